"""The manual's reference pages, generated from the code: the CLI (from Typer's commands), the
configuration (from the pydantic models and their field descriptions) and the metrics.

`python -m llmhost.reference` rewrites docs/cli.md, docs/config.md and docs/metrics.md; a test
fails when one of them is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

GENERATED = "Generated from the code by `python -m llmhost.reference`; do not edit by hand."
CONVENTIONS = [
    "Conventions shared by every command:",
    "",
    "- A usage mistake (a typo, a bad value, a missing file, an unreachable URL or cluster) is",
    "  one line on stderr, `error: ...`, and exit status 2; `-h` is `--help`.",
    "- `COUNT` takes an SI suffix: `300k`, `1.5k`, `50M`, `1.2B` (or `G`), `2T` (k is 1000, so",
    "  `32k` context tokens is 32000). `DURATION` takes `ms`, `s`, `m`, `h`, `d` or `w`: `500ms`,",
    "  `2s`, `5m`, `1h`, `90d`; a bare number is in the option's unit (seconds unless it says).",
    "- Commands that print data take `-o table|json|yaml` (`--output`; table by default);",
    "  `--json` is the same as `-o json`. JSON and YAML hold the same data.",
    "- `-n` is `--namespace`; the commands that talk to a cluster take `--kubeconfig FILE` and",
    "  `--context NAME` (default: `$KUBECONFIG`, else `~/.kube/config`, and its current context).",
]


def cli_markdown() -> str:
    """Every command with its arguments and options."""
    import typer

    from llmhost.cli import app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "", GENERATED, "", *CONVENTIONS, ""]
    lines += _command(root, "llmhost", 2)
    return "\n".join(lines).rstrip() + "\n"


def _command(command: Any, path: str, depth: int) -> list[str]:
    lines = [f"{'#' * depth} `{path}`", ""]
    if command.help:
        lines += [_clean(command.help), ""]
    params = [
        p
        for p in command.params
        if p.name not in ("help", "install_completion", "show_completion")
        and not getattr(p, "hidden", False)
    ]
    if params:
        lines += ["| argument or option | type | default | meaning |", "|---|---|---|---|"]
        for param in params:
            lines.append(_param(param))
        lines.append("")
    if hasattr(command, "commands"):  # a group (Typer vendors click: duck-typed)
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                lines += _command(sub, f"{path} {name}", min(depth + 1, 4))
    return lines


def _param(param: Any) -> str:
    """One table row: the names, the metavar `--help` shows (see llmhost.cli_params), the
    default and the help."""
    from llmhost.cli_params import readable_metavar

    metavar = readable_metavar(param)
    if getattr(param, "param_type_name", "") == "option":
        names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
        kind = "flag" if param.is_flag else f"`{metavar}`"
    else:
        names = f"`{metavar}{'...' if param.nargs != 1 else ''}`"
        kind = "argument"
    meaning = _clean(getattr(param, "help", "") or "")
    default = param.default
    shown = "-" if default in (None, (), [], False) or callable(default) else f"`{default}`"
    if param.required:
        shown = "required"
    return f"| {names} | {kind} | {shown} | {meaning} |"


def _clean(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def config_markdown() -> str:
    """Every field of llmhost.yaml, section by section."""
    from llmhost.config import (
        CanaryConfig,
        ClusterSource,
        Config,
        ModelConfig,
        OidcConfig,
        OtelConfig,
        ServerConfig,
    )

    sections: list[tuple[str, type[BaseModel]]] = [
        ("Top level", Config),
        ("`server`", ServerConfig),
        ("`server.oidc`", OidcConfig),
        ("`server.otel`", OtelConfig),
        ("`models[]`", ModelConfig),
        ("`models[].kubernetes`", ClusterSource),
        ("`models[].canary`", CanaryConfig),
    ]
    lines = [
        "# Configuration reference",
        "",
        GENERATED,
        "",
        "`llmhost.yaml` (or `--config`, or `$LLMHOST_CONFIG`); every `server` field can also come",
        "from the environment as `LLMHOST_<FIELD>` (e.g. `LLMHOST_PORT=9000`).",
        "",
    ]
    for title, model in sections:
        lines += [f"## {title}", "", _clean(model.__doc__ or ""), ""]
        lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            kind = _type_name(info.annotation)
            default = info.default
            if info.default_factory is not None:
                shown = "-"
            elif default is PydanticUndefined:
                shown = "required"
            else:
                shown = "-" if default is None else f"`{_value(default)}`"
            lines.append(f"| `{name}` | {kind} | {shown} | {_clean(info.description or '')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    text = str(annotation) if "[" in str(annotation) or "|" in str(annotation) else text
    text = text.replace("typing.", "").replace("llmhost.config.", "").replace(" | ", " or ")
    return _clean(text)


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, BaseModel):
        return "{...}"
    return str(value)


def pages() -> dict[str, str]:
    """File name under docs/ -> its generated text."""
    from llmhost.gateway.metrics import reference_markdown

    return {
        "cli.md": cli_markdown(),
        "config.md": config_markdown(),
        "metrics.md": reference_markdown(),
    }


def main() -> None:
    """Rewrite the generated pages under docs/ (or the folder given)."""
    docs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs"
    for name, text in pages().items():
        (docs / name).write_text(text)
        print(f"wrote {docs / name}")


if __name__ == "__main__":
    main()
