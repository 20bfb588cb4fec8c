"""`render` of a fleet plan: every member's engine, and the fleet's tiers in the gateway config."""

from pathlib import Path

import yaml
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.config import Config


def test_render_writes_the_fleet_tiers_into_the_gateway_config(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "tokens_per_day: 5e7\nmodels:\n"
        "  - {model: llama-3.1-8b, share: 0.6, tier: fast}\n"
        "  - {model: llama-3.1-70b, share: 0.4, tier: smart}\n"
    )
    runner = CliRunner()
    planned = runner.invoke(
        app,
        ["plan", "--fleet", str(fleet), "--gpu", "h100-80gb", "--quant", "fp8", "--json"],
    )
    assert planned.exit_code == 0, planned.output
    plan_file = tmp_path / "fleet-plan.json"
    plan_file.write_text(planned.output)
    out = tmp_path / "out"
    rendered = runner.invoke(app, ["render", str(plan_file), "--out", str(out)])
    assert rendered.exit_code == 0, rendered.output
    docs = yaml.safe_load_all((out / "config-map.yaml").read_text())
    cm = next(d for d in docs if "llmhost.yaml" in d.get("data", {}))
    raw = yaml.safe_load(cm["data"]["llmhost.yaml"])
    assert {m["name"] for m in raw["models"]} == {"llama-3.1-8b", "llama-3.1-70b"}
    assert raw["tiers"] == {"fast": ["llama-3.1-8b"], "smart": ["llama-3.1-70b"]}
    # the gateway's own validation of the rendered config, tiers included (as it is written)
    config = Config.model_validate(raw)
    assert config.tiers == {"fast": ("llama-3.1-8b",), "smart": ("llama-3.1-70b",)}


def test_render_uses_the_catalogued_prequantized_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["render", "llama-3.1-8b", "--gpu", "t4", "--quant", "awq", "--out", str(out)]
    rendered = CliRunner().invoke(app, args)
    assert rendered.exit_code == 0, rendered.output
    text = "\n".join(p.read_text() for p in out.glob("*.yaml"))
    assert "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4" in text
    # a model with no catalogued checkpoint in the format still asks for --weights
    args = ["render", "mistral-7b", "--gpu", "t4", "--quant", "awq", "--out", str(tmp_path / "m")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--weights" in refused.output
