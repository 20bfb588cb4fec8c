"""The audit log: one record per request, written in the background, never with content.

Records carry who (key prefix, tenant), what (model, replica), how it went (status, token counts,
TTFT, duration) and a SHA-256 of the prompt, never the prompt or completion text, a key or an
Authorization header. A writer thread commits what has queued every 50 ms, so the guarantee is:
a request's record is committed to the store within about 100 ms of its response ending, and a
`kill -9` of the gateway loses at most that window. JSON lines for a SIEM go to stdout or a file
in the same flush.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import orjson

from llmhost.gateway.store import AuditRecord, SqlStore

log = logging.getLogger("llmhost.audit")
FLUSH_INTERVAL_S = 0.05


def prompt_sha256(payload: dict[str, object]) -> str | None:
    """SHA-256 of the request's prompt (messages, prompt or input), canonically serialised."""
    for field in ("messages", "prompt", "input"):
        value = payload.get(field)
        if value is not None:
            return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return None


def open_jsonl(target: str | None) -> TextIO | None:
    """The JSON-lines sink: '-' for stdout, a path to append to, or None."""
    if target is None:
        return None
    if target == "-":
        return sys.stdout
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


class AuditLog:
    """Queues records from the event loop and commits them from a thread."""

    def __init__(
        self,
        store: SqlStore,
        jsonl: TextIO | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.store = store
        self.jsonl = jsonl
        self.flush_interval_s = flush_interval_s
        self._pending: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._on_error = on_error or (lambda exc: log.error("audit write failed: %s", exc))
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def record(self, record: AuditRecord) -> None:
        """Queue one record (cheap; safe to call on the event loop)."""
        with self._lock:
            self._pending.append(record)

    def flush(self) -> None:
        """Commit everything queued so far."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.store.add_audit(batch)
        except Exception as exc:  # keep the records for the next try
            with self._lock:
                self._pending[:0] = batch
            self._on_error(exc)
            return
        if self.jsonl is not None:
            self.jsonl.write("".join(_line(r) for r in batch))
            self.jsonl.flush()

    def close(self) -> None:
        """Stop the writer after a last flush."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()


def _line(record: AuditRecord) -> str:
    fields = dict(record.__dict__)
    fields["time"] = datetime.fromtimestamp(record.ts, UTC).isoformat()
    return orjson.dumps(fields).decode() + "\n"
