"""Console sessions: who logged in with which admin principal, and the CSRF token of their forms.

Sessions live in this gateway process only (a restart logs everyone out; behind several gateway
replicas the console needs sticky sessions). The cookie holds a random id; the server keeps its
SHA-256, the principal, the CSRF token and an expiry, never the admin key itself. A secret made
on a console page (a new API key) waits in the session until the next page shows it, once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmhost.gateway.roles import AdminPrincipal

COOKIE = "llmhost_console"
LOGIN_COOKIE = "llmhost_console_login"  # the login form's CSRF token (double submit)
TTL_S = 8 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """One logged-in browser."""

    principal: AdminPrincipal
    csrf: str
    expires: float
    flash: list[str] = field(default_factory=list)  # notices for the next page
    secret: str | None = None  # a new key's secret, shown on the next page and dropped

    def take_secret(self) -> str | None:
        """The pending secret, removed: it is shown exactly once."""
        secret, self.secret = self.secret, None
        return secret

    def csrf_ok(self, given: str | None) -> bool:
        """Whether a form's token is this session's."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """The console's sessions, by the SHA-256 of their cookie value."""

    def __init__(self, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_digest: dict[str, Session] = {}

    def open(self, principal: AdminPrincipal) -> tuple[str, Session]:
        """A new session for `principal`: (the cookie value, the session)."""
        self._expire()
        if len(self._by_digest) >= MAX_SESSIONS:  # the oldest makes room
            oldest = min(self._by_digest, key=lambda d: self._by_digest[d].expires)
            del self._by_digest[oldest]
        cookie = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), self.clock() + self.ttl_s)
        self._by_digest[_digest(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session behind a cookie value, if any."""
        if not cookie:
            return None
        session = self._by_digest.get(_digest(cookie))
        if session is None or session.expires <= self.clock():
            return None
        return session

    def close(self, cookie: str | None) -> None:
        """End the session behind a cookie value (logout)."""
        if cookie:
            self._by_digest.pop(_digest(cookie), None)

    def _expire(self) -> None:
        now = self.clock()
        for digest in [d for d, s in self._by_digest.items() if s.expires <= now]:
            del self._by_digest[digest]


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()
