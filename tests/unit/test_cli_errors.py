"""The CLI's bad-input matrix: every mistake is one line on stderr and exit 2, never a
traceback (typos, missing files, a port in use, unreachable URLs, bad YAML, existing output
paths)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import run_llmhost

GOLDEN_PLAN = Path(__file__).resolve().parents[1] / "golden" / "plans" / "gemma-3-270m-cpu.json"


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def cases(tmp: Path, port: int) -> list[tuple[str, list[str]]]:
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("server: [unclosed\n")
    wrong_shape = tmp / "shape.yaml"
    wrong_shape.write_text("server:\n  port: eighty\n")
    existing = tmp / "existing.txt"
    existing.write_text("x")
    return [
        ("unknown command", ["plna", "llama-3.1-8b"]),
        ("unknown option", ["plan", "llama-3.1-8b", "--gpuu", "h100"]),
        ("missing argument", ["plan"]),
        ("unknown model", ["plan", "no-such-model-xyz"]),
        ("missing plan file", ["render", str(tmp / "nope.json"), "--out", str(tmp / "o")]),
        ("missing config", ["up", "--config", str(tmp / "nope.yaml")]),
        ("bad YAML", ["up", "--config", str(bad_yaml)]),
        ("wrong type in config", ["up", "--config", str(wrong_shape)]),
        ("render over a file", ["render", str(GOLDEN_PLAN), "--out", str(existing)]),
        ("keys without tenant", ["keys", "create"]),
        ("bad store URL", ["keys", "list", "--store", "mysql://x"]),
        ("audit kind typo", ["audit", "--kind", "keycreated", "--store", f"sqlite:///{tmp}/a.db"]),
        (
            "admins bad role",
            ["admins", "create", "--role", "root", "--store", f"sqlite:///{tmp}/a.db"],
        ),
        ("unreachable bench URL", ["bench", "http://127.0.0.1:9", "--requests", "1"]),
        ("port in use", ["up", "--port", str(port), "--open", "--config", str(tmp / "none.yaml")]),
        ("up --model not a GGUF", ["up", "--model", str(existing)]),
        ("up --model missing", ["up", "--model", str(tmp / "nope.gguf")]),
    ]


@pytest.mark.parametrize("index", range(17))
def test_a_mistake_is_one_line_and_exit_2(index: int, tmp_path: Path, busy_port: int) -> None:
    name, args = cases(tmp_path, busy_port)[index]
    if name == "port in use":
        (tmp_path / "none.yaml").write_text(
            "models:\n  - {name: m, engine: openai, urls: ['http://127.0.0.1:9']}\n"
        )
    done = run_llmhost(args)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (name, done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:"), (name, done.stderr[-2000:])
    assert "Traceback" not in done.stderr


def test_doctor_names_what_is_missing_and_how_to_fix_it(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"server: {{port: {busy_port}, redis_url: 'redis://127.0.0.1:9/0'}}\n"
        "models:\n  - {name: m, engine: openai, urls: ['http://127.0.0.1:9']}\n"
    )
    done = run_llmhost(["doctor", "--config", str(config)])
    assert done.returncode == 1
    assert f"MISSING  port {busy_port}" in done.stdout and "pick another --port" not in done.stdout
    assert "MISSING  redis: 127.0.0.1:9" in done.stdout and "fix: start redis" in done.stdout
    assert "ok       python" in done.stdout


def test_bench_warns_of_an_unlisted_model_and_fails_when_nothing_succeeds(
    tmp_path: Path,
) -> None:
    from tests.support.harness import served_in_thread
    from tests.support.standin import StandIn

    with served_in_thread(StandIn().app()) as url:
        done = run_llmhost(["bench", url, "--model", "nope", "--requests", "1"])
    assert done.returncode == 0  # the stand-in answers any name
    assert "lists no model 'nope'; it lists standin" in done.stderr
    with served_in_thread(StandIn(fail_status=500).app()) as url:
        done = run_llmhost(["bench", url, "--model", "standin", "--requests", "2"])
    assert done.returncode == 1 and "every request failed" in done.stderr


def test_bench_out_over_a_file_is_refused_before_any_request(tmp_path: Path) -> None:
    from tests.support.harness import served_in_thread
    from tests.support.standin import StandIn

    existing = tmp_path / "results"
    existing.write_text("x")
    standin = StandIn()
    with served_in_thread(standin.app()) as url:
        done = run_llmhost(
            ["bench", url, "--model", "standin", "--requests", "2", "--out", str(existing)]
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: --out {existing}: a file is there; give a directory"
    assert standin.requests == [] and existing.read_text() == "x"


def test_doctor_prints_its_checks_as_json(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"server: {{port: {busy_port}}}\n"
        "models:\n  - {name: m, engine: openai, urls: ['http://127.0.0.1:9']}\n"
    )
    done = run_llmhost(["doctor", "--config", str(config), "-o", "json"])
    rows = {row["what"]: row for row in json.loads(done.stdout)}
    assert done.returncode == 1  # the port is taken
    assert rows["python"]["ok"] and not rows[f"port {busy_port}"]["ok"]
    assert set(rows["python"]) == {"what", "ok", "detail", "fix"}
