"""Who is calling: `Authorization: Bearer <key>` to a key record, with a short cache.

A header that is not a well-formed llmhost key is refused before any look-up, so nothing a client
sends reaches a query except a hex digest. Look-ups (hits and misses) are cached for `ttl_s`
seconds: a revoked key stops working within that time on every gateway. While the store is
unreachable, a key seen before keeps its last known answer (however old); a key never seen
raises `StoreUnavailable`, which the gateway answers with 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from aiohttp import web

from llmhost.gateway.errors import StoreUnavailable
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
            try:
                record = await asyncio.to_thread(self.store.key_by_hash, digest)
            except StoreUnavailable:
                if cached is None:
                    raise
                record = cached[0]  # the last answer the store gave, until it is back
            else:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[digest] = (record, now + self.ttl_s)
        if record is None:
            raise AuthError("unknown API key")
        refusal = record.refusal(time.time())
        if refusal:
            raise AuthError(refusal)
        return record


def bearer_matches(request: web.Request, expected: str) -> bool:
    """Whether the request's `Authorization: Bearer` token is `expected` (constant time; any
    bytes a client sends, UTF-8 or not, are compared, never decoded into an error)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    given = token.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode())
