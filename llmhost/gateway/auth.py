"""Who is calling: `Authorization: Bearer <key>` to a key record, with a short cache.

A header that is not a well-formed llmhost key is refused before any look-up, so nothing a client
sends reaches a query except a hex digest. Look-ups (hits and misses) are cached for `ttl_s`
seconds: a revoked key stops working within that time on every gateway.
"""

from __future__ import annotations

import asyncio
import time

from llmhost.gateway.keys import hash_key, prefix_of
from llmhost.gateway.store import KeyRecord, SqlStore


class AuthError(Exception):
    """The request is not authenticated; the message is safe to show (no key material)."""


class Authenticator:
    """Resolves bearer keys against the store."""

    def __init__(self, store: SqlStore, ttl_s: float = 5.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}

    async def authenticate(self, header: str | None) -> KeyRecord:
        """The key record for an Authorization header value, or AuthError saying why not."""
        if not header:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or prefix_of(token.strip()) is None:
            raise AuthError("malformed API key: send 'Authorization: Bearer <key>'")
        digest = hash_key(token.strip())
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            record = cached[0]
        else:
            record = await asyncio.to_thread(self.store.key_by_hash, digest)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (record, now + self.ttl_s)
        if record is None:
            raise AuthError("unknown API key")
        refusal = record.refusal(time.time())
        if refusal:
            raise AuthError(refusal)
        return record
