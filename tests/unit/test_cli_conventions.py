"""The CLI's conventions: readable metavars in every command's help and in the reference,
`-n` for every namespace, `-o table|json|yaml` on what prints data, suffixes on counts and
durations, and a mistake in any of them as one line and exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.cli_params import readable_metavar

runner = CliRunner()
GOLDEN_PLAN = Path(__file__).resolve().parents[1] / "golden" / "plans" / "gemma-3-270m-cpu.json"
# NAME, KEY=VALUE:EFFECT, MODEL,..., or a choice such as table|json|yaml; "" for flags.
READABLE = re.compile(r"([A-Z][A-Z0-9_]*(?:[=:,][A-Z.]*)*(?:\.\.\.)?|[a-z0-9_]+(?:\|[a-z0-9_]+)+)?")


def commands(
    command: Any = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the CLI with the words that call it."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


ALL = list(commands())


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"plan", "render", "apply", "keys create", "admins list", "bench", "audit"} <= names
    assert len(names) > 20


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "llmhost")
def test_help_shows_readable_metavars(path: tuple[str, ...]) -> None:
    command = dict(ALL)[path]
    for param in command.params:
        if param.name in ("help", "install_completion", "show_completion"):
            continue
        metavar = readable_metavar(param)
        assert READABLE.fullmatch(metavar), (path, param.name, metavar)
        if getattr(param, "is_flag", False):
            assert metavar == ""
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    for python_type in ("<str>", "<int>", "<float>", "<bool>", "<path>", "list[", "<list"):
        assert python_type not in result.stdout, (path, python_type)


def test_help_names_the_metavars_people_expect() -> None:
    seen = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"}).stdout
    for metavar in ("GPU", "FORMAT", "COUNT", "DURATION", "table|json|yaml", "MODEL"):
        assert metavar in seen, metavar
    seen = runner.invoke(app, ["render", "--help"], env={"COLUMNS": "200"}).stdout
    assert "KEY=VALUE:EFFECT" in seen and "NAMESPACE" in seen and "PLAN" in seen


def test_the_reference_shows_metavars_not_python_types() -> None:
    from llmhost.reference import cli_markdown

    text = cli_markdown()
    for python_type in ("| str |", "| int |", "| float |", "| Path |", "list[", "<int>"):
        assert python_type not in text, python_type
    assert "| `--timeout` | `DURATION` |" in text and "| `--gpu` | `GPU` |" in text


def test_every_namespace_option_has_n() -> None:
    with_namespace = []
    for path, command in ALL:
        for param in command.params:
            if "--namespace" in getattr(param, "opts", []):
                with_namespace.append(" ".join(path))
                assert "-n" in param.opts, path
    assert {"render", "apply", "rollback", "status"} <= set(with_namespace)


def test_render_n_and_a_drain_with_a_unit(tmp_path: Path) -> None:
    def render(*args: str) -> str:
        out = tmp_path / "-".join(args).replace("/", "_")
        result = runner.invoke(app, ["render", str(GOLDEN_PLAN), "--out", str(out), *args])
        assert result.exit_code == 0, result.output
        return (out / "deployment.yaml").read_text()

    assert "namespace: team-a" in render("-n", "team-a")
    assert render("--drain", "2m") == render("--drain", "120") != render("--drain", "30s")


def test_plan_prints_the_same_data_as_json_and_yaml() -> None:
    args = ["plan", "gemma-3-270m", "--gpu", "cpu", "--context", "8k", "--prompt-tokens", "1.5k"]
    as_json = runner.invoke(app, [*args, "-o", "json"])
    as_yaml = runner.invoke(app, [*args, "--output", "yaml"])
    alias = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == as_yaml.exit_code == alias.exit_code == 0, as_yaml.output
    data = json.loads(as_json.stdout)
    assert yaml.safe_load(as_yaml.stdout) == data == json.loads(alias.stdout)
    assert data["requirements"]["context"] == 8000 and data["requirements"]["prompt_tokens"] == 1500
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "Recommendation" in table.stdout
    assert not table.stdout.lstrip().startswith("{")


def test_ttft_with_a_unit_is_the_same_target() -> None:
    def ttft(value: str) -> float:
        result = runner.invoke(
            app, ["plan", "llama-3.1-8b", "--gpu", "l4", "--ttft", value, "--json"]
        )
        assert result.exit_code == 0, result.output
        return float(json.loads(result.stdout)["requirements"]["ttft_s"])

    assert ttft("500ms") == ttft("0.5") == 0.5


def test_catalog_rows_as_json_yaml_and_table() -> None:
    as_json = json.loads(runner.invoke(app, ["catalog", "gpus", "-o", "json"]).stdout)
    as_yaml = yaml.safe_load(runner.invoke(app, ["catalog", "gpus", "-o", "yaml"]).stdout)
    assert as_json == as_yaml and any(row["gpu"] == "l4" for row in as_json)
    table = runner.invoke(app, ["catalog", "gpus"])
    assert table.exit_code == 0 and "catalog: gpus" in table.stdout


def _store_with_keys(tmp_path: Path) -> str:
    store = f"sqlite:///{tmp_path / 'k.db'}"
    result = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--rpm",
            "1.2k",
            "--monthly-tokens",
            "50M",
            "--tpm",
            "100k",
            "--expires",
            "90d",
            "--store",
            store,
        ],
    )
    assert result.exit_code == 0, result.output
    return store


def test_key_limits_and_expiry_take_suffixes(tmp_path: Path) -> None:
    store = _store_with_keys(tmp_path)
    (row,) = json.loads(runner.invoke(app, ["keys", "list", "-o", "json", "--store", store]).stdout)
    assert (row["rpm"], row["tpm"], row["monthly_tokens"]) == (1200, 100_000, 50_000_000)
    shown = yaml.safe_load(
        runner.invoke(app, ["keys", "show", row["prefix"], "-o", "yaml", "--store", store]).stdout
    )
    assert shown == row  # the same typed data in both formats
    from datetime import datetime

    expires = datetime.fromisoformat(row["expires_at"]).timestamp()
    assert abs(expires - (time.time() + 90 * 86400)) < 60
    listed = runner.invoke(app, ["keys", "list", "--store", store]).stdout
    assert "rpm=1200" in listed and row["prefix"] in listed


def test_admins_and_audit_print_yaml_and_json(tmp_path: Path) -> None:
    store = _store_with_keys(tmp_path)
    result = runner.invoke(app, ["admins", "create", "--role", "viewer", "--store", store])
    assert result.exit_code == 0, result.output
    (admin,) = yaml.safe_load(
        runner.invoke(app, ["admins", "list", "-o", "yaml", "--store", store]).stdout
    )
    assert admin["role"] == "viewer" and admin["created_at"].endswith("+00:00")
    trail = json.loads(runner.invoke(app, ["audit", "-o", "json", "--store", store]).stdout)
    assert [row["action"] for row in trail] == ["key_created", "role_changed"]
    both = runner.invoke(app, ["audit", "-o", "json", "--csv", "--store", store])
    assert both.exit_code == 2


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmhost", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "llama-3.1-8b", "-o", "xml"], "'xml': choose table, json or yaml"),
        (["plan", "llama-3.1-8b", "--json", "-o", "yaml"], "choose one"),
        (["plan", "llama-3.1-8b", "--ttft", "-1s"], "must not be negative"),
        (["plan", "llama-3.1-8b", "--context", "5 m"], "--context"),
        (["plan", "llama-3.1-8b", "--tokens-per-day", "1e400"], "too large"),
        (["bench", "http://127.0.0.1:9", "--model", "m", "--timeout", "abc"], "a duration"),
        (["bench", "http://127.0.0.1:9", "--model", "m", "--slo-ttft", "2 s"], "--slo-ttft"),
        (["bench", "http://127.0.0.1:9", "--model", "m", "--requests", "1.5"], "whole number"),
        (["apply", "/nonexistent", "--timeout", "forever"], "--timeout"),
        (["up", "--audit-retention-days", "36h"], "whole number of days"),
        (["keys", "create", "--tenant", "a", "--rpm", "lots"], "--rpm"),
        (["keys", "create", "--tenant", "a", "--expires", "-5d"], "--expires"),
        (["usage", "--since", "5x"], "--since"),
        (["catalog", "gpus", "-o", "csv"], "'csv': choose table, json or yaml"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    if args[0] in ("keys", "usage"):
        args = [*args, "--store", f"sqlite:///{tmp_path / 'k.db'}"]
    done = _run(*args)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (args, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr[-2000:]
    assert message in lines[0], lines[0]
