"""What `make vllm` says when something is missing, and how converted weights are checked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.engines import vllm_install
from llmhost.engines.build import BuildError
from llmhost.engines.vllm_weights import MANIFEST, folder_hashes, is_intact, vllm_weights
from llmhost.errors import UsageError


def test_no_python_3_11_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 12, 0))
    monkeypatch.setattr(vllm_install.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match=r"needs python3\.11 .*torch 2\.13\.0\+cpu"):
        vllm_install.find_base_python()


def test_a_hand_made_venv_that_is_not_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMHOST_VLLM_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(BuildError, match="LLMHOST_VLLM_PYTHON points at"):
        vllm_install.install_vllm(quiet=True)


def test_the_launcher_is_the_launch_module_under_the_venvs_python(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    launcher = vllm_install.vllm_launcher(python)
    text = launcher.read_text()
    assert text.startswith(f"#!{python}\n") and "def main(argv" in text
    assert launcher.stat().st_mode & 0o111
    assert vllm_install.vllm_launcher(python) == launcher  # unchanged: not rewritten


def test_converted_folders_are_checked_against_their_manifest(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")
    assert not is_intact(tmp_path)  # no manifest yet
    manifest = {"files": folder_hashes(tmp_path)}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    assert is_intact(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert not is_intact(tmp_path)


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"folder without a config\.json"):
        vllm_weights(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert vllm_weights(str(tmp_path)) == tmp_path  # a Hugging Face folder is used as it is


def test_engines_install_refuses_an_unknown_engine() -> None:
    result = CliRunner().invoke(app, ["engines", "install", "vlmm"])
    assert result.exit_code == 2 and "did you mean: vllm" in result.output
