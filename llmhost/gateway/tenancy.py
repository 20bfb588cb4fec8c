"""Everything a request meets before and after the engine: who it is, whether its limits let it
through, and the audit record it leaves. Built once per gateway process from the server config."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from llmhost.config import ServerConfig
from llmhost.gateway.audit import AuditLog, open_jsonl
from llmhost.gateway.auth import Authenticator
from llmhost.gateway.errors import StoreUnavailable
from llmhost.gateway.limits import Counters, month_start
from llmhost.gateway.limits.memory import MemoryCounters
from llmhost.gateway.metrics import GatewayMetrics
from llmhost.gateway.oidc import TokenVerifier
from llmhost.gateway.roles import AdminAuth
from llmhost.gateway.store import SqlStore, open_store
from llmhost.gateway.trail import AuthFailures

log = logging.getLogger("llmhost.gateway")


@dataclass
class Tenancy:
    """Auth (None when the config says the gateway is open), limits, audit and the store."""

    store: SqlStore
    counters: Counters
    audit: AuditLog
    auth: Authenticator | None
    admin_key: str | None
    default_max_tokens: int
    admins: AdminAuth
    failures: AuthFailures
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def later(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run bookkeeping after the response is on its way, keeping a reference to it."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, grace_s: float = 5.0) -> None:
        """Finish pending bookkeeping (for at most `grace_s`: a release still retrying against
        an unreachable Redis is left to its lease), flush the audit log, close connections."""
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=grace_s)
            for task in late:
                task.cancel()
        await self.counters.close()
        if self.auth is not None:
            await self.auth.close()
        self.failures.flush()
        await asyncio.to_thread(self.audit.close)
        self.store.close()


async def apply_retention(
    store: SqlStore, days: int, admin_days: int | None = None, every_s: float = 86400.0
) -> None:
    """Delete request records older than `days` and admin-trail entries older than
    `admin_days`, now and then daily (run as a task)."""
    while True:
        try:
            await asyncio.to_thread(store.purge_audit, time.time() - days * 86400)
            if admin_days is not None:
                await asyncio.to_thread(store.purge_admin_audit, time.time() - admin_days * 86400)
        except StoreUnavailable as exc:
            log.warning("audit retention skipped, the store is unreachable: %s", exc)
        await asyncio.sleep(every_s)


async def export_budgets(store: SqlStore, metrics: GatewayMetrics, every_s: float = 60.0) -> None:
    """Publish each tenant's month-to-date tokens and budget share as gauges (run as a task).

    Read from the shared store, so every gateway replica reports the same figures; the request
    path is untouched.
    """
    while True:
        try:
            await asyncio.to_thread(_budget_figures, store, metrics)
        except StoreUnavailable as exc:
            log.warning("tenant budget gauges not refreshed, the store is unreachable: %s", exc)
        await asyncio.sleep(every_s)


def _budget_figures(store: SqlStore, metrics: GatewayMetrics) -> None:
    since = month_start()
    for tenant in store.tenants():
        used = store.tokens_since(tenant.name, since)
        metrics.tenant_tokens.labels(tenant.name).set(used)
        if tenant.monthly_tokens:
            metrics.budget_used.labels(tenant.name).set(used / tenant.monthly_tokens)


def open_tenancy(server: ServerConfig, metrics: GatewayMetrics) -> Tenancy:
    """Connect the store (migrating it), the counters and the audit writer."""
    store = open_store(server.store_url)
    counters: Counters
    if server.redis_url:
        from llmhost.gateway.limits.redis_store import RedisCounters

        lease_s = server.total_timeout_s + server.body_read_timeout_s + 60
        counters = RedisCounters(server.redis_url, store.tokens_since, lease_s)
    else:
        counters = MemoryCounters(store.tokens_since)

    verifier = TokenVerifier(server.oidc) if server.oidc is not None else None

    def dropped(reason: str, count: int) -> None:
        metrics.audit_dropped.labels(reason).inc(count)

    audit = AuditLog(
        store,
        open_jsonl(server.audit_jsonl),
        on_drop=dropped,
        max_pending=server.audit_queue_max,
        access=sys.stderr if server.access_log else None,
    )
    auth = None if server.auth == "open" else Authenticator(store, verifier=verifier)
    admin_key = os.environ.get(server.admin_key_env) or None
    group_roles = dict(server.oidc.admin_roles) if server.oidc is not None else {}
    return Tenancy(
        store=store,
        counters=counters,
        audit=audit,
        auth=auth,
        admin_key=admin_key,
        default_max_tokens=server.default_max_tokens,
        admins=AdminAuth(store, admin_key, auth, group_roles),
        failures=AuthFailures(audit, server.auth_failure_window_s),
    )
