"""Who is calling: `Authorization: Bearer <key>` (an llmhost API key, or an OIDC token when
`server.oidc` is set) to a key record, with a short cache.

A header that is not a well-formed llmhost key is refused before any look-up, so nothing a client
sends reaches a query except a hex digest. Look-ups (hits and misses) are cached for `ttl_s`
seconds: a revoked key stops working within that time on every gateway. While the store is
unreachable, a key seen before keeps its last known answer (however old); a key never seen
raises `StoreUnavailable`, which the gateway answers with 503 and Retry-After.

An OIDC token (see `oidc.py`) is verified and turned into the same kind of record: its tenant and
allowed models from its claims, its rate limits from `server.oidc`, its tenant's monthly budget
from the store, and a prefix made from a digest of issuer and subject, so limits, budgets and the
audit apply exactly as for keys and the token itself goes nowhere.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from aiohttp import web

from llmhost.gateway.errors import StoreUnavailable
from llmhost.gateway.keys import hash_key, prefix_of
from llmhost.gateway.oidc import (
    IssuerUnavailable,
    TokenError,
    TokenPrincipal,
    TokenVerifier,
    looks_like_jwt,
)
from llmhost.gateway.store import KeyRecord, SqlStore


class AuthError(Exception):
    """The request is not authenticated; the message is safe to show (no key material)."""


class Authenticator:
    """Resolves bearer keys against the store."""

    def __init__(
        self, store: SqlStore, ttl_s: float = 5.0, verifier: TokenVerifier | None = None
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.verifier = verifier
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}
        self._budgets: dict[str, tuple[int | None, float]] = {}

    async def authenticate(self, header: str | None) -> KeyRecord:
        """The key record for an Authorization header value, or AuthError saying why not."""
        if not header:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and self.verifier is not None and looks_like_jwt(token):
            return await self._token(token)
        if scheme.lower() != "bearer" or prefix_of(token) is None:
            raise AuthError("malformed API key: send 'Authorization: Bearer <key>'")
        digest = hash_key(token)
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

    async def principal(self, token: str) -> TokenPrincipal:
        """A verified OIDC token's principal (for the admin API's group roles)."""
        assert self.verifier is not None
        try:
            return await self.verifier.verify(token)
        except IssuerUnavailable as exc:
            raise StoreUnavailable(str(exc)) from None
        except TokenError as exc:
            raise AuthError(str(exc)) from None

    async def _token(self, token: str) -> KeyRecord:
        """An OIDC token as a key record: limits from config, budget from the store."""
        assert self.verifier is not None
        principal = await self.principal(token)
        oidc = self.verifier.config
        return KeyRecord(
            prefix=principal.subject,
            tenant=principal.tenant,
            rpm=oidc.rpm,
            tpm=oidc.tpm,
            max_concurrent=oidc.max_concurrent,
            models=principal.models,
            expires_at=principal.expires_at,
            monthly_tokens=await self._budget(principal.tenant),
        )

    async def _budget(self, tenant: str) -> int | None:
        """The tenant's monthly budget (cached like keys; the last known one while the store
        is unreachable)."""
        now = time.monotonic()
        cached = self._budgets.get(tenant)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            found = await asyncio.to_thread(self.store.tenant, tenant)
        except StoreUnavailable:
            if cached is None:
                raise
            return cached[0]
        budget = found.monthly_tokens if found is not None else None
        if len(self._budgets) > 100_000:
            self._budgets.clear()
        self._budgets[tenant] = (budget, now + self.ttl_s)
        return budget

    async def close(self) -> None:
        """Close the OIDC key fetcher."""
        if self.verifier is not None:
            await self.verifier.close()


def bearer_matches(request: web.Request, expected: str) -> bool:
    """Whether the request's `Authorization: Bearer` token is `expected` (constant time; any
    bytes a client sends, UTF-8 or not, are compared, never decoded into an error)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    given = token.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode())
