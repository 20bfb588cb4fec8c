"""OIDC bearer tokens against a real issuer on loopback: keys made by the test, a discovery
document and a JWKS endpoint served over HTTP, key rotation; no mocked verification. The
official `openai` client carries the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import openai
import uvloop
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from llmhost.gateway.store import open_store
from tests.gateway.test_tenancy import audit_rows, call
from tests.support.harness import gateway, model, serving, standin

AUDIENCE = "llmhost-gateway"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class Issuer:
    """An OpenID provider's public face: discovery and JWKS, with keys the test controls."""

    def __init__(self) -> None:
        self.url = ""
        self.keys: dict[str, tuple[str, Any]] = {}  # kid -> (algorithm, private key)
        self.published: set[str] = set()
        self.jwks_fetches = 0

    def add(self, kid: str, algorithm: str) -> None:
        if algorithm == "RS256":
            key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        self.keys[kid] = (algorithm, key)
        self.published.add(kid)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url, "jwks_uri": self.url + "/jwks"})

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        keys = []
        for kid in sorted(self.published):
            algorithm, key = self.keys[kid]
            jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})
        return web.json_response({"keys": keys})

    def token(self, kid: str = "r1", **claims: Any) -> str:
        algorithm, key = self.keys[kid]
        now = int(time.time())
        body = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "alice",
            "org": "acme",
            "iat": now,
            "exp": now + 300,
            "models": ["m"],
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


@asynccontextmanager
async def oidc_gateway(tmp_path: Path, **oidc: Any) -> AsyncIterator[tuple[Issuer, str]]:
    issuer = Issuer()
    issuer.add("r1", "RS256")
    issuer.add("e1", "ES256")
    issuer.add("d1", "EdDSA")
    async with serving(issuer.app()) as issuer_url:
        issuer.url = issuer_url
        settings = {
            "issuer": issuer_url,
            "audience": AUDIENCE,
            "tenant_claim": "org",
            "models_claim": "models",
            "jwks_refresh_min_s": 0,
            **oidc,
        }
        server = {
            "auth": "keys",
            "store_url": f"sqlite:///{tmp_path / 'llmhost.db'}",
            "oidc": settings,
        }
        async with (
            standin() as (_, burl),
            gateway([model("m", burl), model("other", burl)], **server) as url,
        ):
            yield issuer, url


def run(scenario: Any) -> None:
    uvloop.run(scenario())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    """The algorithm-confusion attack: HS256 keyed with the issuer's public key (PyJWT will not
    make one, so it is made by hand)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "r1"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def tamper(token: str) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["org"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def test_the_openai_client_is_served_with_a_token_from_the_issuer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with oidc_gateway(tmp_path) as (issuer, url):
            for kid in ("r1", "e1", "d1"):  # RS256, ES256, EdDSA
                client = openai.AsyncOpenAI(
                    base_url=url + "/v1", api_key=issuer.token(kid), max_retries=0
                )
                reply = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4
                )
                assert reply.choices[0].message.content
            token = issuer.token()
            status, _, body = await call(url, token, CHAT)
            assert status == 200
            status, _, body = await call(url, token, {**CHAT, "model": "other"})
            assert status == 403 and body["error"]["code"] == "model_not_allowed"
        rows = audit_rows(tmp_path)
        assert {r.tenant for r in rows} == {"acme"}
        assert all(r.key_prefix and r.key_prefix.startswith("oidc-") for r in rows)
        assert token not in json.dumps([r.__dict__ for r in rows])

    run(scenario)


def test_bad_tokens_get_401_in_the_openai_shape(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with oidc_gateway(tmp_path) as (issuer, url):
            now = int(time.time())
            public_pem = (
                issuer.keys["r1"][1]
                .public_key()
                .public_bytes(
                    encoding=serialization.Encoding.PEM,
                    format=serialization.PublicFormat.SubjectPublicKeyInfo,
                )
            )
            unsigned = jwt.encode(
                {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "org": "acme", "exp": now + 300},
                None,
                algorithm="none",
            )
            confused = hmac_token(
                {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "org": "acme", "exp": now + 300},
                public_pem,
            )
            issuer.add("gone", "RS256")
            rotated_away = issuer.token("gone")
            issuer.published.discard("gone")
            cases = {
                "expired": issuer.token(exp=now - 120),
                "not yet valid": issuer.token(nbf=now + 120),
                "wrong audience": issuer.token(aud="someone-else"),
                "wrong issuer": issuer.token(iss="https://evil.example.com"),
                "unsigned": unsigned,
                "HMAC with the public key": confused,
                "tampered": tamper(issuer.token()),
                "rotated away": rotated_away,
                "no tenant": issuer.token(org=None),
                "no expiry": issuer.token(exp=None),
                "garbage": "a.b.c",
            }
            for name, token in cases.items():
                status, _, body = await call(url, token, CHAT)
                assert status == 401, (name, body)
                assert body["error"]["code"] == "invalid_api_key", (name, body)
                assert token not in body["error"]["message"]

    run(scenario)


def test_a_rotated_key_is_fetched_on_first_use_and_refreshes_are_rate_limited(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with oidc_gateway(tmp_path, jwks_refresh_min_s=3600) as (issuer, url):
            assert (await call(url, issuer.token(), CHAT))[0] == 200
            fetches = issuer.jwks_fetches
            for i in range(20):  # made-up kids: refused without a fetch each
                forged = jwt.encode(
                    {"sub": "x"},
                    issuer.keys["r1"][1],
                    algorithm="RS256",
                    headers={"kid": f"bogus-{i}"},
                )
                assert (await call(url, forged, CHAT))[0] == 401
            assert issuer.jwks_fetches == fetches
        async with oidc_gateway(tmp_path / "b") as (issuer, url):
            assert (await call(url, issuer.token(), CHAT))[0] == 200
            issuer.add("r2", "RS256")  # the provider rotates: a new key signs from now on
            issuer.published.discard("r1")
            assert (await call(url, issuer.token("r2"), CHAT))[0] == 200

    (tmp_path / "b").mkdir()
    run(scenario)


def test_a_token_tenant_meets_its_budget_like_a_key(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    store.set_tenant("acme", 10, keep_budget=False)
    store.close()

    async def scenario() -> None:
        async with oidc_gateway(tmp_path) as (issuer, url):
            status, _, body = await call(url, issuer.token(), CHAT)
            assert status == 429 and body["error"]["code"] == "insufficient_quota"

    run(scenario)


def test_oidc_groups_map_to_admin_roles(tmp_path: Path) -> None:
    async def scenario() -> None:
        roles = {"llm-ops": "operator", "llm-readers": "viewer"}
        async with oidc_gateway(tmp_path, admin_roles=roles) as (issuer, url):
            ops = issuer.token(groups=["staff", "llm-ops"])
            viewer = issuer.token(sub="bob", groups=["llm-readers"])
            nobody = issuer.token(sub="eve", groups=["staff"])
            assert (await call(url, ops, method="GET", path="/admin/keys"))[0] == 200
            status, _, body = await call(url, viewer, method="GET", path="/admin/keys")
            assert status == 403 and body["error"]["code"] == "admin_only"
            assert (await call(url, viewer, method="GET", path="/admin/usage"))[0] == 200
            assert (await call(url, nobody, method="GET", path="/admin/usage"))[0] == 403
            expired = issuer.token(groups=["llm-ops"], exp=int(time.time()) - 300)
            assert (await call(url, expired, method="GET", path="/admin/keys"))[0] == 401

    run(scenario)
