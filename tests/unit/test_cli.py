"""The CLI: output modes, one-line errors with exit code 2, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from llmhost.cli import app

runner = CliRunner()


def test_plan_json() -> None:
    result = runner.invoke(app, ["plan", "llama-3.1-8b", "--gpu", "l4", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "llama-3.1-8b" and data["recommendation"]["gpu"] == "l4"


def test_plan_markdown_sections() -> None:
    result = runner.invoke(
        app, ["plan", "llama-3.1-70b", "--tokens-per-day", "5e7", "--spot", "--markdown"]
    )
    assert result.exit_code == 0, result.output
    for heading in ("## Requirements", "## Recommendation", "## Cost", "## Hosted APIs",
                    "break-even", "## Alternatives"):  # fmt: skip
        assert heading in result.stdout


def test_plan_table() -> None:
    result = runner.invoke(app, ["plan", "gemma-3-270m", "--gpu", "cpu"])
    assert result.exit_code == 0 and "Recommendation" in result.stdout


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmhost", *args], capture_output=True, text=True, check=False
    )


def test_unknown_model_one_line_exit_2() -> None:
    proc = _run("plan", "lama-3.1-70b")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "did you mean: llama-3.1-70b" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_gpu_and_quant_exit_2() -> None:
    for args in (("--gpu", "h100"), ("--quant", "q4km")):
        proc = _run("plan", "llama-3.1-8b", *args)
        assert proc.returncode == 2 and "did you mean" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_malformed_config_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 64}))
    proc = _run("plan", str(path))
    assert proc.returncode == 2
    assert str(path) in proc.stderr and "num_hidden_layers" in proc.stderr
    assert "Traceback" not in proc.stderr
