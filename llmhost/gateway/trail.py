"""Authentication failures on the admin trail, summarised: one entry per source and reason
per window (with its count), never one row per request of an attack."""

from __future__ import annotations

import asyncio
import collections
import time

from llmhost.gateway.audit import AuditLog
from llmhost.gateway.store.records import AdminEvent

MAX_KEYS = 1000  # distinct (source, reason) pairs kept per window; the rest count as "other"


class AuthFailures:
    """Counts failures as they happen (cheap, on the event loop) and writes the summaries."""

    def __init__(self, audit: AuditLog, window_s: float = 60.0) -> None:
        self.audit = audit
        self.window_s = window_s
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._since = time.time()

    def note(self, source: str | None, reason: str) -> None:
        """One failed authentication from `source` (a client address) for `reason`."""
        key = (source or "unknown", reason[:120])
        if key not in self._counts and len(self._counts) >= MAX_KEYS:
            key = ("other", "other")
        self._counts[key] += 1

    def flush(self) -> None:
        """Queue one admin-trail entry per pair seen since the last flush."""
        counts, self._counts = self._counts, collections.Counter()
        since, self._since = self._since, time.time()
        for (source, reason), count in sorted(counts.items()):
            self.audit.record(
                AdminEvent(
                    ts=time.time(),
                    actor="anonymous",
                    role=None,
                    action="auth_failure",
                    target=None,
                    source=source,
                    after={"reason": reason, "since": since},
                    count=count,
                )
            )

    async def run(self) -> None:
        """Flush every window (run as a task; flush once more at shutdown)."""
        while True:
            await asyncio.sleep(self.window_s)
            self.flush()
