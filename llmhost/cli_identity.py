"""CLI commands for admin principals and the audit trails: `llmhost admins ...`, `llmhost audit`.

Kept beside `cli.py` (which registers them) so each file stays about one thing.
"""

from __future__ import annotations

import csv
import getpass
import io
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer

from llmhost.cli import ConfigOption, SinceOption, StoreOption, _moment, _store, fail
from llmhost.cli_params import JsonOption, OutputOption, Typer, emit, output_format
from llmhost.errors import LlmhostError, UsageError
from llmhost.gateway.errors import Refusal
from llmhost.gateway.store import SqlStore
from llmhost.gateway.store.records import AdminRecord

admins_app = Typer(
    help="Admin principals: keys for the /admin/ API, by role.", no_args_is_help=True
)
KINDS = (
    "request",
    "auth_failure",
    "key_created",
    "key_revoked",
    "budget_changed",
    "role_changed",
    "denied",
    "config_loaded",
)


def cli_actor() -> str:
    """How the admin trail names a person at this terminal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def record_cli(
    store: SqlStore,
    action: str,
    target: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Write an admin-trail entry for a change made from the CLI (no gateway in between)."""
    from llmhost.gateway.roles import admin_event

    store.add_audit([admin_event(cli_actor(), "operator", action, target, "cli", before, after)])


@admins_app.command("create")
def admins_create(
    role: Annotated[
        str, typer.Option("--role", metavar="ROLE", help="operator, auditor or viewer.")
    ],
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Who or what the key is for.")
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Create an admin key; its secret is printed once, only a hash is stored."""
    from llmhost.gateway.roles import create_admin

    try:
        secret, record = create_admin(_store(config, store), role, name, cli_actor())
    except Refusal as refusal:
        raise fail(UsageError(refusal.message)) from None
    except LlmhostError as exc:
        raise fail(exc) from None
    typer.echo(f"created admin key {record.prefix} ({record.role})")
    typer.echo(f"  {secret}")
    typer.echo("  (shown once: llmhost keeps only its hash)")


@admins_app.command("list")
def admins_list(
    output: OutputOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List admin keys by prefix and role (never a secret)."""
    try:
        shape = output_format(output, as_json)
        records = _store(config, store).admins()
    except LlmhostError as exc:
        raise fail(exc) from None
    if shape != "table":
        emit([_admin_data(r) for r in records], shape)
        return
    if not records:
        typer.echo("no admin keys")
        return
    typer.echo(f"{'PREFIX':16}  {'ROLE':9}  {'STATE':8}  NAME")
    for r in records:
        state = "revoked" if r.revoked_at else "active"
        typer.echo(f"{r.prefix:16}  {r.role:9}  {state:8}  {r.name or ''}")


@admins_app.command("revoke")
def admins_revoke(
    prefix: Annotated[
        str, typer.Argument(metavar="PREFIX", help="The admin key's prefix (llma-xxxxxxxxxx).")
    ],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Revoke an admin key."""
    try:
        db = _store(config, store)
        if not db.revoke_admin(prefix):
            raise UsageError(f"no active admin key with prefix '{prefix}'")
        record_cli(db, "role_changed", prefix, {"revoked": False}, {"revoked": True})
    except LlmhostError as exc:
        raise fail(exc) from None
    typer.echo(f"revoked {prefix}")


def audit_command(
    since: SinceOption = None,
    tenant: Annotated[
        str | None, typer.Option(metavar="TENANT", help="Only this tenant (or admin target).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(metavar="KIND", help=f"One kind: {', '.join(KINDS)}.")
    ] = None,
    output: OutputOption = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV.")] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Read both audit trails, requests and admin actions, oldest first."""
    if kind is not None and kind not in KINDS:
        raise fail(UsageError(f"--kind '{kind}': use one of {', '.join(KINDS)}"))
    if sum((jsonl, as_csv, output is not None)) > 1:
        raise fail(UsageError("-o, --jsonl and --csv: choose one"))
    try:
        start = _moment(since, "--since", future=False) if since else 0.0
        rows = trail_rows(_store(config, store), start, tenant, kind)
    except LlmhostError as exc:
        raise fail(exc) from None
    if output in ("json", "yaml"):
        emit(rows, output)
    elif jsonl:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
    elif as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=["time", "trail", "who", "what", "target", "detail"]
        )
        writer.writeheader()
        writer.writerows(_flat(row) for row in rows)
        sys.stdout.write(out.getvalue())
    else:
        typer.echo(f"{'TIME':25}  {'TRAIL':7}  {'WHO':22}  {'WHAT':15}  {'TARGET':18}  DETAIL")
        for row in rows:
            flat = _flat(row)
            typer.echo(
                f"{flat['time']:25}  {flat['trail']:7}  {flat['who'][:22]:22}  "
                f"{flat['what']:15}  {flat['target'][:18]:18}  {flat['detail']}"
            )


def _admin_data(record: AdminRecord) -> dict[str, Any]:
    """An admin key as plain data, times in ISO 8601 (never the secret or hash)."""
    data: dict[str, Any] = record.to_dict()
    for field in ("created_at", "revoked_at"):
        if isinstance(data.get(field), float):
            data[field] = datetime.fromtimestamp(data[field], UTC).isoformat(timespec="seconds")
    return data


def trail_rows(
    store: SqlStore, since: float, tenant: str | None, kind: str | None
) -> list[dict[str, Any]]:
    """Both trails as plain rows, oldest first, filtered."""
    rows: list[dict[str, Any]] = []
    if kind in (None, "request"):
        rows += [
            {"trail": "request", **asdict(r)}
            for r in store.audit(since)
            if tenant is None or r.tenant == tenant
        ]
    if kind != "request":
        rows += [{"trail": "admin", **asdict(e)} for e in store.admin_audit(since, kind, tenant)]
    for row in rows:
        row["time"] = datetime.fromtimestamp(row["ts"], UTC).isoformat(timespec="seconds")
    return sorted(rows, key=lambda row: row["ts"])


def _flat(row: dict[str, Any]) -> dict[str, str]:
    if row["trail"] == "request":
        who = row["key_prefix"] or "-"
        detail = (
            f"status {row['status']}, {row['prompt_tokens']}+{row['completion_tokens']} "
            f"tokens, {row['duration_ms']:.0f} ms"
        )
        return {
            "time": row["time"],
            "trail": "request",
            "who": f"{who} ({row['tenant'] or '-'})",
            "what": "request",
            "target": row["model"] or "-",
            "detail": detail,
        }
    parts = [f"from {row['source']}"] if row["source"] else []
    if row["count"] > 1:
        parts.append(f"x{row['count']}")
    if row["before"] is not None or row["after"] is not None:
        parts.append(
            f"{orjson.dumps(row['before']).decode()} -> {orjson.dumps(row['after']).decode()}"
        )
    who = row["actor"] + (f" ({row['role']})" if row["role"] else "")
    return {
        "time": row["time"],
        "trail": "admin",
        "who": who,
        "what": row["action"],
        "target": row["target"] or "-",
        "detail": ", ".join(parts),
    }
