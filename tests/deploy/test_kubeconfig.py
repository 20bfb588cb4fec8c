"""`--kubeconfig` and `--context` on the commands that talk to a cluster, and a cluster that
does not answer: one line naming the server and the context, exit 2 (as `bench` does for an
unreachable URL). Against the stand-in API server of test_apply; never a cluster."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.deploy.test_apply import ApiServer, rendered
from tests.support.kube import kubeconfig_for
from tests.support.processes import run_llmhost

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (a port just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def one_line(done: object) -> str:
    stderr = getattr(done, "stderr", "")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr[-2000:]
    assert "Traceback" not in stderr
    return lines[0]


def test_context_picks_the_cluster_among_two(
    api: tuple[ApiServer, str], dead_url: str, tmp_path: Path
) -> None:
    server, url = api
    directory = rendered(tmp_path)
    config = kubeconfig_for(url, tmp_path, {"prod": dead_url}, current="prod")
    picked = ["--kubeconfig", str(config), "--context", "stand-in"]
    done = run_llmhost(["apply", str(directory), "--dry-run", *picked], ENV)
    assert done.returncode == 0, done.stderr
    assert "Namespace/llmhost created (dry run)" in done.stdout
    assert server.applies and not server.objects  # asked the stand-in; a dry run keeps nothing
    done = run_llmhost(["apply", str(directory), *picked, "-n", "llmhost", "--timeout", "30s"], ENV)
    assert done.returncode == 0, done.stderr
    done = run_llmhost(["status", "-n", "llmhost", *picked, "-o", "json"], ENV)
    assert done.returncode == 0 and '"target": "Deployment/llmhost/llmhost-gateway"' in done.stdout
    # The current context is the other one: it is the one tried without --context.
    done = run_llmhost(["status", "--kubeconfig", str(config)], ENV)
    line = one_line(done)
    assert done.returncode == 2 and dead_url in line and "context prod" in line


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "{dir}", "--dry-run"],
        ["apply", "{dir}", "--check"],
        ["doctor", "--cluster", "{dir}"],
        ["status"],
        ["rollback"],
    ],
    ids=lambda args: " ".join(a for a in args if a != "{dir}"),
)
def test_an_unreachable_cluster_is_one_line_naming_it(
    args: list[str], dead_url: str, tmp_path: Path
) -> None:
    directory = rendered(tmp_path)
    config = kubeconfig_for(dead_url, tmp_path)
    command = [a.replace("{dir}", str(directory)) for a in args]
    done = run_llmhost(command, {**ENV, "KUBECONFIG": str(config)})
    line = one_line(done)
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the Kubernetes API at {dead_url}" in line
    assert "context stand-in" in line and str(config) in line


def test_kubeconfig_mistakes_are_one_line(api: tuple[ApiServer, str], tmp_path: Path) -> None:
    _, url = api
    directory = rendered(tmp_path)
    config = kubeconfig_for(url, tmp_path)
    for args, message in (
        (["--kubeconfig", str(tmp_path / "nope")], "no such kubeconfig file"),
        (["--kubeconfig", str(config), "--context", "stand-ni"], "did you mean: stand-in"),
        (["--kubeconfig", str(config), "-n", "team-a"], "rendered for namespace llmhost"),
    ):
        done = run_llmhost(["apply", str(directory), "--dry-run", *args], ENV)
        assert done.returncode == 2 and message in one_line(done), done.stderr
    done = run_llmhost(["status"], ENV)  # no kubeconfig anywhere, not in a pod
    assert done.returncode == 2 and "no Kubernetes configuration" in one_line(done)
