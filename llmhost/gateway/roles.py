"""Admin principals and what each role may do: least privilege on every /admin/ route.

Three roles. Operators manage keys, tenants and budgets (and read everything); auditors read
keys, usage and both audit trails; viewers read health and usage totals. A principal is the
bootstrap key in `LLMHOST_ADMIN_KEY` (an operator), an admin key made by `llmhost admins
create --role ...` (stored as a hash, like API keys), or an OIDC token whose groups map to a role
in `server.oidc.admin_roles` (the highest mapped role wins).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmhost.config import Role
from llmhost.gateway.auth import Authenticator, AuthError
from llmhost.gateway.errors import Refusal
from llmhost.gateway.keys import admin_prefix_of, hash_key, new_key
from llmhost.gateway.oidc import looks_like_jwt
from llmhost.gateway.store import SqlStore
from llmhost.gateway.store.records import AdminEvent, AdminRecord

if TYPE_CHECKING:
    from llmhost.gateway.audit import AuditLog

ROLES: tuple[Role, ...] = ("operator", "auditor", "viewer")
RANK = {role: i for i, role in enumerate(ROLES)}  # lower is more powerful
READERS: frozenset[Role] = frozenset({"operator", "auditor"})
EVERYONE: frozenset[Role] = frozenset(ROLES)
OPERATORS: frozenset[Role] = frozenset({"operator"})

# Who may call what: (method, route) -> roles. Every /admin/ route is listed; a test walks it.
PERMISSIONS: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/admin/keys"): READERS,
    ("POST", "/admin/keys"): OPERATORS,
    ("GET", "/admin/keys/{prefix}"): READERS,
    ("DELETE", "/admin/keys/{prefix}"): OPERATORS,
    ("PUT", "/admin/tenants/{name}"): OPERATORS,
    ("GET", "/admin/usage"): EVERYONE,  # viewers see totals, not tenants
    ("GET", "/admin/audit"): READERS,
    ("GET", "/admin/admins"): READERS,
    ("GET", "/admin/health"): EVERYONE,
}


@dataclass(frozen=True)
class AdminPrincipal:
    """Who is calling the admin API, and as what."""

    actor: str  # "env", an admin key prefix, or "oidc:<subject digest>"
    role: Role


def create_admin(
    store: SqlStore, role: str, name: str | None, actor: str, source: str = "cli"
) -> tuple[str, AdminRecord]:
    """A new admin key for `role` (shown once; stored as a hash) and its trail entry."""
    if role not in ROLES:
        raise Refusal("invalid_value", f"role '{role}': use one of {', '.join(ROLES)}", "role")
    secret = new_key("llma")
    record = AdminRecord(admin_prefix_of(secret) or "", role, name, time.time())
    store.add_admin(record, hash_key(secret))
    store.add_audit(
        [
            admin_event(
                actor,
                "operator",
                "role_changed",
                record.prefix,
                source,
                None,
                {"role": role, "name": name},
            )
        ]
    )
    return secret, record


def admin_event(
    actor: str,
    role: str | None,
    action: str,
    target: str | None,
    source: str | None,
    before: dict[str, object] | None = None,
    after: dict[str, object] | None = None,
) -> AdminEvent:
    """An entry of the admin trail, stamped now."""
    return AdminEvent(time.time(), actor, role, action, target, source, before, after)


def record_action(
    audit: AuditLog,
    principal: AdminPrincipal,
    action: str,
    target: str | None,
    source: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Queue the admin-trail entry of a change a principal made (admin API and console alike)."""
    audit.record(
        admin_event(principal.actor, principal.role, action, target, source, before, after)
    )


class AdminAuth:
    """Resolves the admin principal behind an Authorization header."""

    def __init__(
        self,
        store: SqlStore,
        bootstrap_key: str | None,
        tokens: Authenticator | None,
        group_roles: dict[str, Role],
    ) -> None:
        self.store = store
        self.bootstrap_key = bootstrap_key
        self.tokens = tokens
        self.group_roles = group_roles

    async def enabled(self) -> bool:
        """Whether any admin principal can exist (else the admin API is off)."""
        if self.bootstrap_key is not None or self.group_roles:
            return True
        return bool(await asyncio.to_thread(self.store.admins))

    async def principal(self, header: str) -> AdminPrincipal:
        """The principal, or a Refusal: 401 when unknown, 403 when it holds no admin role."""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refusal("invalid_api_key", "the admin API needs an admin key or token")
        given = token.encode("utf-8", "surrogateescape")
        if self.bootstrap_key is not None and hmac.compare_digest(
            given, self.bootstrap_key.encode()
        ):
            return AdminPrincipal("env", "operator")
        prefix = admin_prefix_of(token)
        if prefix is not None:
            record = await asyncio.to_thread(self.store.admin_by_hash, hash_key(token))
            if record is not None and record.revoked_at is None and record.role in ROLES:
                return AdminPrincipal(record.prefix, _role(record.role))
        elif looks_like_jwt(token) and self.tokens is not None and self.tokens.verifier:
            try:
                found = await self.tokens.principal(token)
            except AuthError as exc:
                raise Refusal("invalid_api_key", str(exc)) from None
            roles = [self.group_roles[g] for g in found.groups if g in self.group_roles]
            if not roles:
                raise Refusal("admin_only", "the token's groups hold no admin role")
            return AdminPrincipal(f"oidc:{found.subject}", min(roles, key=RANK.__getitem__))
        raise Refusal("invalid_api_key", "the admin API needs an admin key or token")


def _role(name: str) -> Role:
    for role in ROLES:
        if role == name:
            return role
    raise ValueError(name)


def allowed(principal: AdminPrincipal, method: str, route: str) -> bool:
    """Whether the principal's role may call `method route`."""
    return principal.role in PERMISSIONS.get((method, route), frozenset())
