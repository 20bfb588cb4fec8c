"""OpenID Connect bearer tokens: verify a JWT from the configured issuer and name its caller.

Verification is PyJWT's: the signature by a key from the issuer's JWKS (RS256, ES256 or EdDSA
as configured; `none` and HMAC are never accepted), `exp` and `iss` and `aud` required, `exp`
and `nbf` checked with a small leeway. The JWKS is fetched once (from `jwks_url`, or the
issuer's discovery document), trusted for `jwks_ttl_s`, and fetched again when a token names a
`kid` it does not hold (the provider rotated its keys), at most once per
`jwks_refresh_min_s` so a flood of made-up `kid`s cannot make the gateway hammer the provider.
A token is never logged, audited or kept; the caller is named by its issuer and subject.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from llmhost.config import OidcConfig

FETCH_TIMEOUT_S = 5.0


class TokenError(Exception):
    """The token is not acceptable; the message says why, without quoting it."""


class IssuerUnavailable(TokenError):
    """The issuer's signing keys cannot be fetched right now (not the token's fault)."""


@dataclass(frozen=True)
class TokenPrincipal:
    """Who a verified token speaks for."""

    subject: str  # "oidc-" and a digest of issuer and subject: the key prefix it acts as
    tenant: str
    models: tuple[str, ...] | None
    groups: tuple[str, ...]
    expires_at: float


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url parts: a JWT, not an llmhost key."""
    return token.count(".") == 2 and not token.startswith("llm")


class JwksCache:
    """The issuer's signing keys, fetched on demand and on rotation."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key for `kid` (the only key when the token names none)."""
        if self._wants_fetch(kid):
            async with self._lock:
                if self._wants_fetch(kid):  # unless a request waiting before us fetched it
                    await self._fetch()
        if not self._keys:
            raise IssuerUnavailable("the issuer's signing keys are not available yet")
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise TokenError("the token is signed by a key the issuer does not publish")
        return found

    def _wants_fetch(self, kid: str | None) -> bool:
        """No keys yet, keys past their TTL, or an unknown `kid` (rate-limited)."""
        age = time.monotonic() - self._fetched_at
        if not self._keys or age > self.config.jwks_ttl_s:
            return not self._keys or age >= self.config.jwks_refresh_min_s
        unknown = kid is not None and kid not in self._keys
        return unknown and age >= self.config.jwks_refresh_min_s

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(FETCH_TIMEOUT_S))
        self._fetched_at = time.monotonic()  # a failed fetch also counts against the rate
        try:
            url = self.config.jwks_url or await self._discover()
            async with self._session.get(url) as resp:
                resp.raise_for_status()
                document = await resp.json(content_type=None)
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
            raise IssuerUnavailable(f"the issuer's signing keys cannot be fetched: {exc}") from None
        self._keys = {k.key_id or "": k for k in keys}

    async def _discover(self) -> str:
        assert self._session is not None
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        async with self._session.get(url) as resp:
            resp.raise_for_status()
            document = await resp.json(content_type=None)
        jwks = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks, str):
            raise ValueError("the discovery document has no jwks_uri")
        return jwks

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


class TokenVerifier:
    """Verifies tokens for one OIDC configuration."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self.jwks = JwksCache(config)

    async def verify(self, token: str) -> TokenPrincipal:
        """The principal of a valid token, or TokenError saying what is wrong with it."""
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenError("malformed token") from None
        if header.get("alg") not in config.algorithms:
            raise TokenError(f"token algorithm {str(header.get('alg'))[:20]!r} is not accepted")
        key = await self.jwks.key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token is from another issuer") from None
        except jwt.InvalidTokenError:
            raise TokenError("the token's signature or claims are invalid") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> TokenPrincipal:
        config = self.config
        tenant = claims.get(config.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise TokenError(f"the token has no '{config.tenant_claim}' claim naming a tenant")
        models = None
        if config.models_claim is not None:
            models = _names(claims.get(config.models_claim))
        digest = hashlib.sha256(f"{claims['iss']}\n{claims['sub']}".encode()).hexdigest()
        return TokenPrincipal(
            subject=f"oidc-{digest[:10]}",
            tenant=tenant,
            models=models,
            groups=_names(claims.get(config.groups_claim)) or (),
            expires_at=float(claims["exp"]),
        )

    async def close(self) -> None:
        """Close the JWKS client."""
        await self.jwks.close()


def _names(value: object) -> tuple[str, ...] | None:
    """A claim as names: a list of strings, or one space-separated string (OAuth scopes)."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return None
