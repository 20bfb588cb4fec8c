"""The audit log: one record per request, written in the background, never with content.

Records carry who (key prefix, tenant), what (model, replica), how it went (status, token counts,
TTFT, duration) and a SHA-256 of the prompt, never the prompt or completion text, a key or an
Authorization header. A writer thread commits what has queued every 50 ms, so the guarantee is:
a request's record is committed to the store within about 100 ms of its response ending, and a
`kill -9` of the gateway loses at most that window.

Failures are contained: while the store is unreachable, records wait in a bounded queue
(`max_pending`; past it the oldest are dropped) and the writer retries with a growing pause; a
record the database refuses (a NUL byte, say) is dropped alone, not with its batch, and never
blocks the ones after it. The JSON-lines sink (stdout or a file, for a SIEM) is separate: a full
disk there loses JSON lines, never SQL records. Every drop is counted by reason
(`on_drop`, exported as llmhost_audit_dropped_total) and logged.

The same writer prints the access log (`access`: a line per request, as vLLM and Ollama print
one), formatted and written in its batches, so the request path only queues a tuple.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import orjson

from llmhost.gateway.errors import StoreUnavailable
from llmhost.gateway.store import AuditRecord, SqlStore
from llmhost.gateway.store.records import AdminEvent
from llmhost.gateway.store.sql import RecordRefused

log = logging.getLogger("llmhost.audit")
FLUSH_INTERVAL_S = 0.05
MAX_PENDING = 100_000
MAX_BACKOFF_S = 5.0
BATCH = 1000  # records per transaction

DropCounter = Callable[[str, int], None]  # (reason, records)
Entry = AuditRecord | AdminEvent  # the request trail's records, the admin trail's events


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
        on_drop: DropCounter | None = None,
        max_pending: int = MAX_PENDING,
        access: TextIO | None = None,
    ) -> None:
        self.store = store
        self.jsonl = jsonl
        self.access_sink = access
        self._access: collections.deque[tuple[AuditRecord, str, str]] = collections.deque()
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._on_drop = on_drop or (lambda reason, n: None)
        self._pending: collections.deque[Entry] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pause = flush_interval_s
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Records queued and not yet committed."""
        return len(self._pending)

    def record(self, record: Entry) -> None:
        """Queue one record of either trail (cheap; safe to call on the event loop)."""
        with self._lock:
            self._pending.append(record)
            overflow = len(self._pending) - self.max_pending
            for _ in range(max(0, overflow)):
                self._pending.popleft()
        if overflow > 0:
            self._dropped("queue_full", overflow)

    def access(self, record: AuditRecord, remote: str, path: str) -> None:
        """Queue the access line of a request (when the access log is on)."""
        if self.access_sink is not None:
            self._access.append((record, remote, path))

    def flush(self) -> bool:
        """Commit everything queued so far; False if the store was unreachable (kept)."""
        self._write_access()
        while True:
            with self._lock:
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            if not batch:
                return True
            committed, unsent = self._commit(batch)
            self._write_jsonl(committed)
            if unsent:
                with self._lock:
                    self._pending.extendleft(reversed(unsent))
                log.warning("audit store unreachable, %d records wait", self.pending)
                return False

    def _commit(self, batch: list[Entry]) -> tuple[list[Entry], list[Entry]]:
        """Insert `batch`: (committed, not sent because the store is unreachable). If the
        database refuses the batch, insert one by one and drop only the records it refuses."""
        try:
            self.store.add_audit(batch)
            return batch, []
        except StoreUnavailable:
            return [], batch
        except Exception as exc:  # RecordRefused, or anything else: find the culprit
            if not isinstance(exc, RecordRefused):
                log.error("audit batch failed (%s); writing its records one by one", exc)
        kept: list[Entry] = []
        for i, record in enumerate(batch):
            try:
                self.store.add_audit([record])
            except StoreUnavailable:
                return kept, batch[i:]
            except Exception as exc:
                log.error("audit record dropped, the store refused it: %s", exc)
                self._dropped("refused", 1)
                continue
            kept.append(record)
        return kept, []

    def _write_jsonl(self, records: list[Entry]) -> None:
        if self.jsonl is None or not records:
            return
        try:
            self.jsonl.write("".join(_line(r) for r in records))
            self.jsonl.flush()
        except (OSError, ValueError) as exc:  # a full disk, a closed or broken stream
            log.error("audit JSON lines not written (%d records): %s", len(records), exc)
            self._dropped("jsonl", len(records))

    def _write_access(self) -> None:
        lines = []
        while self._access:
            record, remote, path = self._access.popleft()
            lines.append(access_line(record, remote, path))
        if lines and self.access_sink is not None:
            try:
                self.access_sink.write("".join(lines))
                self.access_sink.flush()
            except (OSError, ValueError) as exc:
                log.error("access log not written (%d lines): %s", len(lines), exc)

    def _dropped(self, reason: str, count: int) -> None:
        try:
            self._on_drop(reason, count)
        except Exception:  # a metrics failure must not stop the writer
            log.exception("counting dropped audit records failed")

    def close(self) -> None:
        """Stop the writer after a last flush."""
        self._stop.set()
        self._thread.join(timeout=5)
        if not self.flush():
            self._dropped("shutdown", self.pending)

    def _run(self) -> None:
        """Flush every interval; while the store is down, back off up to MAX_BACKOFF_S."""
        while not self._stop.wait(self._pause):
            try:
                ok = self.flush()
            except Exception:  # never let the writer thread die: log and go on
                log.exception("audit writer failed; retrying")
                ok = False
            interval = self.flush_interval_s
            self._pause = interval if ok else min(MAX_BACKOFF_S, max(interval, self._pause * 2))


def access_line(record: AuditRecord, remote: str, path: str) -> str:
    """`2026-12-01T22:40:01 127.0.0.1 "POST /v1/chat/completions" 200 gemma-3-270m 12+6 tok
    ttft 45 ms 310 ms llmh-1a2b3c4d5e`: what happened, never what was said."""
    moment = datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="seconds")
    ttft = f" ttft {record.ttft_ms:.0f} ms" if record.ttft_ms is not None else ""
    return (
        f'{moment} {remote} "POST {path}" {record.status} {record.model or "-"} '
        f"{record.prompt_tokens}+{record.completion_tokens} tok{ttft} "
        f"{record.duration_ms:.0f} ms {record.key_prefix or '-'}\n"
    )


def _line(record: Entry) -> str:
    """One JSON line, naming its trail (request or admin)."""
    fields = {"trail": "admin" if isinstance(record, AdminEvent) else "request", **record.__dict__}
    fields["time"] = datetime.fromtimestamp(record.ts, UTC).isoformat()
    return orjson.dumps(fields).decode() + "\n"
