"""Real Redis and PostgreSQL for tests: use them if up, start them if installed but down, and
otherwise skip loudly, except under CI (CI=true), where a missing service fails the run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(port: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _listening(port):
            return True
        time.sleep(0.2)
    return False


def _unavailable(what: str) -> None:
    message = f"{what} is not running and could not be started here"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; under CI it must run")
    pytest.skip(f"SKIPPED LOUDLY: {message}")


def redis_url() -> str:
    """The local Redis, started if installed and down."""
    if not _listening(6379) and shutil.which("redis-server"):
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
            ],
            check=False,
            capture_output=True,
        )
        _wait(6379)
    if not _listening(6379):
        _unavailable("Redis (127.0.0.1:6379)")
    return REDIS_URL


def postgres_url() -> str:
    """The local PostgreSQL (trust auth, database `test`), started if installed and down."""
    if not _listening(5432) and shutil.which("pg_ctlcluster"):
        versions = (
            sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
        )
        if versions:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"],
                check=False,
                capture_output=True,
            )
            _wait(5432)
    if not _listening(5432):
        _unavailable("PostgreSQL (127.0.0.1:5432)")
    return POSTGRES_URL


def _postgres_version() -> str:
    return sorted(Path("/etc/postgresql").glob("*"))[-1].name


def postgres(action: str) -> None:
    """Stop, start or restart the local PostgreSQL cluster (for fault tests)."""
    if action == "start" and _listening(5432):
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _postgres_version(), "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )
    if action != "stop" and not _wait(5432):
        raise RuntimeError(f"PostgreSQL did not come back after {action}")


def stop_redis() -> None:
    """Shut the local Redis down (nothing is saved: it keeps no data on disk)."""
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, timeout=15)
    deadline = time.monotonic() + 15
    while _listening(6379) and time.monotonic() < deadline:
        time.sleep(0.1)


def fresh_schema() -> str:
    """A store URL on the local PostgreSQL in a schema of its own (tests stay apart)."""
    import secrets

    import psycopg

    schema = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres_url()}?options=-csearch_path%3D{schema}"
