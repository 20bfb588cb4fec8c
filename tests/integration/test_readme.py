"""The README's command blocks keep working: every `llmhost` command line in it names commands
and options that exist (run with --help, so a renamed flag fails here first), and the
Quickstart's Python runs against a real gateway serving the embedded model."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Served

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == kind]


def llmhost_lines() -> Iterator[str]:
    """Each `llmhost ...` command in the shell blocks (continuations joined, comments and
    `$(...)` wrappers taken off)."""
    for body in blocks("sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#", line.strip(), maxsplit=1)[0].strip()
            inner = re.search(r"\$\((llmhost [^)]*)\)", line)
            if inner:
                line = inner.group(1)
            if line.startswith("llmhost "):
                yield line


LINES = sorted(set(llmhost_lines()))


def test_the_readme_has_commands_to_check() -> None:
    assert len(LINES) >= 5, LINES


@pytest.mark.parametrize("line", LINES)
def test_each_readme_command_names_real_commands_and_options(line: str) -> None:
    line = re.sub(r"\[[^\]]*\]", " ", line)  # [optional parts] of a synopsis
    words = [w for w in shlex.split(line)[1:] if not w.startswith(("$", "<"))]
    # Placeholders in capitals (MODEL, FILE) and [optional] parts are not real arguments.
    words = [
        w
        for w in words
        if not re.fullmatch(r"\[?[A-Z_|.\-]+\]?", w) and "[" not in w and "]" not in w
    ]
    done = subprocess.run(
        [sys.executable, "-m", "llmhost", *words, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{line}\n{done.stderr}"


def test_the_quickstart_python_runs_against_the_embedded_model(served: Served) -> None:
    quickstart = next(body for body in blocks("python") if "OpenAI(" in body)
    code = quickstart.replace("http://127.0.0.1:8000", served.url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the model said something
