"""Checkov's Kubernetes checks on every golden render: each failing check must be one that
docs/deploy.md lists, for those objects, with the reason it does not apply.

Checkov lives in its own virtual environment (`make checkov`: its pins clash with this
project's); without it the test is skipped with a loud reason, except under CI=true.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.cases import CASES, Case

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
CACHED = Path.home() / ".cache" / "llmhost" / "checkov" / "bin" / "checkov"


def checkov() -> str:
    found = os.environ.get("LLMHOST_CHECKOV") or (str(CACHED) if CACHED.exists() else None)
    found = found or shutil.which("checkov")
    if found is None:
        reason = "checkov is missing: `make checkov` installs it in ~/.cache/llmhost/checkov"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
    return found


def accepted() -> list[tuple[str, str]]:
    """(check id, object name pattern) pairs from the docs' table."""
    pairs = []
    for line in DOCS.read_text().splitlines():
        if not line.startswith("| CKV_"):
            continue
        check, objects = line.split("|")[1:3]
        names = [n.strip().replace("\\*", "*") for n in objects.split(",")]
        pairs += [(c, n) for c in re.findall(r"CKV_K8S_\d+", check) for n in names]
    return pairs


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_checkov_failures_are_the_documented_ones(case: Case) -> None:
    binary = checkov()
    command = [binary, "-d", str(case.expected), "--framework", "kubernetes", "--quiet", "-o"]
    done = subprocess.run([*command, "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    allowed = accepted()
    unexplained = []
    for failed in report["results"]["failed_checks"]:
        name = failed["resource"].rsplit(".", 1)[-1]
        if not any(c == failed["check_id"] and fnmatch.fnmatch(name, n) for c, n in allowed):
            unexplained.append(f"{failed['check_id']} {failed['resource']}: {failed['check_name']}")
    assert not unexplained, "checkov failures not listed in docs/deploy.md:\n" + "\n".join(
        unexplained
    )
    assert report["summary"]["passed"] > 0
