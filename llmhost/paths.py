"""Where llmhost keeps files outside the repository."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """llmhost's cache folder (models, engine builds, host facts), honouring XDG_CACHE_HOME."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmhost"


def data_dir() -> Path:
    """llmhost's data folder (the key and audit store), honouring XDG_DATA_HOME."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmhost"


def output_directory(out: Path) -> None:
    """Make `out` (a directory to write into), or say in one line why it cannot be one: before
    the work, so a run never ends by failing to save what it did."""
    from llmhost.errors import UsageError

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file is there; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot make the directory ({exc.strerror})") from None
