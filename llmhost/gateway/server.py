"""Running the gateway process: engines, health checks and the HTTP server, started and
stopped in the right order.

Start-up resolves weights and the engine binary, starts every managed replica, and serves
requests as soon as the listener is up (requests that arrive before a replica is ready get 503
with Retry-After). Shutdown on SIGINT or SIGTERM stops taking connections, lets in-flight
requests finish for a few seconds, then stops every engine process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import logging.handlers
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from llmhost.config import Config, ModelConfig
from llmhost.engines import LaunchSpec, adapter
from llmhost.engines.replicas import Replica, ReplicaSet, ReplicaState
from llmhost.engines.supervisor import LocalSupervisor
from llmhost.errors import UsageError
from llmhost.gateway.app import Gateway
from llmhost.gateway.health import HealthMonitor
from llmhost.gateway.leader import close as close_coordination
from llmhost.gateway.leader import cluster_coordination
from llmhost.gateway.metrics import GatewayMetrics
from llmhost.gateway.roles import admin_event
from llmhost.gateway.routes import Route
from llmhost.gateway.scaling import Autoscaler, Scaler
from llmhost.gateway.store.records import AdminEvent
from llmhost.gateway.tenancy import Tenancy, apply_retention, export_budgets, open_tenancy
from llmhost.gateway.upstream import UpstreamPool
from llmhost.paths import cache_dir

if TYPE_CHECKING:
    from lightkube import AsyncClient

    from llmhost.gateway.kubernetes_scaler import KubernetesScaler

log = logging.getLogger("llmhost.gateway")
SHUTDOWN_GRACE_S = 5.0
VLLM_CPU_KV_GIB = 1.0
READY_TIMEOUT_S = {"vllm": 900.0}  # vLLM on 2 CPU cores takes minutes to load; others 120 s


@dataclass(frozen=True)
class Prepared:
    """A model ready to launch: its config and, for managed models, binary and weights."""

    config: ModelConfig
    binary: Path | None = None
    weights: Path | None = None


def prepare(config: Config) -> list[Prepared]:
    """Build or install the engine and fetch weights for every managed model (blocking, before
    serving): llama-server and the GGUF, or the vLLM venv and the weights converted for it."""
    from llmhost.engines.build import build_llama_server
    from llmhost.engines.weights import resolve_weights

    prepared = []
    for model in config.models:
        if model.managed and model.engine == "vllm":
            from llmhost.engines.vllm_install import install_vllm, vllm_launcher
            from llmhost.engines.vllm_weights import vllm_weights

            assert model.weights is not None
            launcher = vllm_launcher(install_vllm())
            prepared.append(Prepared(model, launcher, vllm_weights(model.weights)))
        elif model.managed:
            assert model.weights is not None
            binary = build_llama_server()
            prepared.append(Prepared(model, binary, resolve_weights(model.weights)))
        else:
            prepared.append(Prepared(model))
    return prepared


def launch_spec(model: ModelConfig, weights: Path) -> LaunchSpec:
    """The engine launch spec for a managed model; unless set, replicas share the cores evenly."""
    threads = model.threads or max(1, (os.cpu_count() or 1) // max(1, model.replicas))
    return LaunchSpec(
        weights=str(weights),
        served_name=model.name,
        context=model.context,
        parallel=model.parallel,
        threads=threads,
        chat_template=model.chat_template,
        prefix_reuse=model.routing == "prefix",
        # vLLM on CPU: 1 GiB of KV cache per replica (about 55,000 tokens of Gemma 3 270M);
        # VLLM_CPU_KVCACHE_SPACE in the environment is overridden by this.
        cpu_kv_cache_gib=VLLM_CPU_KV_GIB if model.engine == "vllm" else None,
        extra_args=model.args,
    )


@dataclass
class Seams:
    """What tests may hand the composition root instead of letting it build its own."""

    pool: UpstreamPool | None = None  # the request path's client to engines
    tenancy: Tenancy | None = None  # store, counters, audit
    clock: Callable[[], float] = time.perf_counter  # the request path's clock
    scalers: Mapping[str, Scaler] = field(default_factory=dict)  # by model: what scales it


@dataclass
class Parts:
    """Everything one gateway process runs, built (and owned) by `compose`."""

    config: Config
    gateway: Gateway
    metrics: GatewayMetrics
    tenancy: Tenancy
    routes: list[Route]
    monitor: HealthMonitor
    supervisors: list[tuple[LocalSupervisor, int]] = field(default_factory=list)
    autoscalers: list[Autoscaler] = field(default_factory=list)
    cluster_tasks: list[Coroutine[Any, Any, None]] = field(default_factory=list)
    startup: list[Coroutine[Any, Any, None]] = field(default_factory=list)


async def compose(
    config: Config,
    models: list[Prepared],
    stack: contextlib.AsyncExitStack,
    log_dir: Path | None = None,
    seams: Seams | None = None,
) -> Parts:
    """Build every component of the gateway and register its shutdown on `stack`, so that
    leaving the stack (normally or by an exception) stops each one, in reverse order: the
    listener first (registered by the caller, later), then engines, clients and the store."""
    seams = seams or Seams()
    metrics = GatewayMetrics()
    log_dir = log_dir or cache_dir() / "logs"
    server = config.server
    pool = seams.pool or UpstreamPool()
    stack.callback(pool.close)
    telemetry = None
    if server.otel is not None:  # shut down after the last request settled: registered first
        from llmhost.gateway.telemetry import Telemetry

        telemetry = Telemetry(server.otel)
        stack.push_async_callback(asyncio.to_thread, telemetry.shutdown)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())  # health checks
    )
    if seams.tenancy is not None:
        tenancy = seams.tenancy
    else:
        tenancy = await asyncio.to_thread(open_tenancy, server, metrics)
        stack.push_async_callback(tenancy.close)
    kube_clients: list[AsyncClient] = []
    stack.push_async_callback(_close_all, kube_clients)
    routes: list[Route] = []
    supervisors: list[tuple[LocalSupervisor, int]] = []
    autoscalers: list[Autoscaler] = []
    cluster_tasks: list[Coroutine[Any, Any, None]] = []  # endpoint discovery, one per model
    startup: list[Coroutine[Any, Any, None]] = []  # awaited before the autoscalers start
    for item in models:
        model = item.config
        replica_set = ReplicaSet(model.name, adapter(model.engine))
        replica_set.on_change(lambda rs, r: metrics.set_backend(rs.model, r.id, _up(rs, r)))
        for i, url in enumerate(model.urls):
            replica_set.add(Replica(id=f"{model.name}-{i}", url=url.rstrip("/")))
        route = Route(model, replica_set, metrics.for_model(model.name))
        metrics.queued.labels(model.name).set_function(partial(getattr, route, "queued"))
        routes.append(route)
        if model.name in seams.scalers:
            autoscalers.append(Autoscaler(route, seams.scalers[model.name], model, metrics))
        elif model.kubernetes is not None:
            cluster_tasks.append(_cluster_model(route, metrics, autoscalers, startup, kube_clients))
        if item.binary is not None and item.weights is not None and model.name not in seams.scalers:
            spec = launch_spec(model, item.weights)
            ready_s = READY_TIMEOUT_S.get(model.engine, 120.0)
            supervisor = LocalSupervisor(replica_set, item.binary, spec, log_dir, ready_s)
            stack.push_async_callback(supervisor.stop)
            supervisors.append((supervisor, model.replicas))
            autoscalers.append(Autoscaler(route, supervisor, model, metrics))
    gateway = Gateway(
        server, routes, config.tiers, metrics, pool, tenancy, clock=seams.clock, telemetry=telemetry
    )
    monitor = HealthMonitor([r.replica_set for r in routes], session, server.health_interval_s)
    return Parts(
        config,
        gateway,
        metrics,
        tenancy,
        routes,
        monitor,
        supervisors,
        autoscalers,
        cluster_tasks,
        startup,
    )


def config_loaded(config: Config) -> AdminEvent:
    """The admin-trail entry for a gateway starting with `config` (a config change takes
    effect by a restart, so this is where one shows), naming it by digest, never its secrets."""
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
    models = [m.name for m in config.models]
    return admin_event(
        "system",
        None,
        "config_loaded",
        None,
        "startup",
        None,
        {"config_sha256": digest, "models": models},
    )


def background(
    stack: contextlib.AsyncExitStack, coro: Coroutine[Any, Any, None], name: str
) -> None:
    """Run `coro` as a task that leaving `stack` cancels (and waits for)."""
    task = asyncio.create_task(coro, name=name)

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(cancel)


async def _close_all(clients: list[AsyncClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients))


async def listen(
    stack: contextlib.AsyncExitStack, app: web.Application, host: str, port: int, idle_s: float
) -> None:
    """Serve `app` on host:port until `stack` is left (then stop taking connections and let
    in-flight requests finish for SHUTDOWN_GRACE_S)."""
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        keepalive_timeout=idle_s,
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use: stop what holds it, or pick another --port"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def run_gateway(
    config: Config,
    models: list[Prepared],
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda url: None,
    log_dir: Path | None = None,
    seams: Seams | None = None,
) -> None:
    """Serve until `stop` is set; every engine process is stopped before this returns."""
    server = config.server
    async with contextlib.AsyncExitStack() as stack:
        parts = await compose(config, models, stack, log_dir, seams)
        tenancy, metrics = parts.tenancy, parts.metrics
        coordination = cluster_coordination(
            parts.autoscalers, server.scaler_lease, server.redis_url
        )
        if coordination is not None:
            stack.push_async_callback(close_coordination, coordination)
        await listen(stack, parts.gateway.app(), server.host, server.port, server.idle_timeout_s)
        if server.metrics_port is not None:
            metrics_app = parts.gateway.metrics_app()
            await listen(
                stack, metrics_app, server.host, server.metrics_port, server.idle_timeout_s
            )
        url = f"http://{server.host}:{server.port}"
        log.info("listening on %s", url)
        tenancy.audit.record(config_loaded(config))
        background(stack, tenancy.failures.run(), "auth-failures")
        background(stack, parts.monitor.run(), "health")
        for i, task in enumerate(parts.cluster_tasks):
            background(stack, task, f"discovery-{i}")
        retention = apply_retention(
            tenancy.store, server.audit_retention_days, server.admin_audit_retention_days
        )
        background(stack, retention, "retention")
        if server.metrics_tenant_labels:
            background(stack, export_budgets(tenancy.store, metrics), "budgets")
        starting = asyncio.ensure_future(_start_all(parts.supervisors, parts.startup))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises if no replica came up
            for scaler in parts.autoscalers:
                background(stack, scaler.run(), f"autoscale-{scaler.route.name}")
            if coordination is not None:
                background(stack, coordination.run(), "leader")
            on_ready(url)
            await stopping
        else:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        log.info("shutting down")


@contextlib.asynccontextmanager
async def in_process(
    config: Config, models: list[Prepared], seams: Seams | None = None
) -> AsyncIterator[Parts]:
    """The gateway composed as `run_gateway` does, without a listener: for tests that serve
    `parts.gateway.app()` on aiohttp's test server. Replicas are health-checked once first."""
    async with contextlib.AsyncExitStack() as stack:
        parts = await compose(config, models, stack, seams=seams)
        await parts.monitor.check_all()
        yield parts


def _cluster_model(
    route: Route,
    metrics: GatewayMetrics,
    autoscalers: list[Autoscaler],
    startup: list[Coroutine[Any, Any, None]],
    clients: list[AsyncClient],
) -> Coroutine[Any, Any, None]:
    """A model whose replicas are pods: follow its endpoints and, if asked, scale it."""
    from llmhost.gateway.discovery import EndpointDiscovery
    from llmhost.gateway.kube_api import api_client
    from llmhost.gateway.kubernetes_scaler import KubernetesScaler

    source = route.config.kubernetes
    assert source is not None
    client = api_client(source.namespace)
    clients.append(client)
    if source.inference_pool is not None:
        from llmhost.gateway.discovery import PoolDiscovery

        discovery: EndpointDiscovery = PoolDiscovery(
            route.replica_set, client, source.inference_pool, source.port, source.poll_s
        )
    else:
        discovery = EndpointDiscovery(
            route.replica_set,
            client,
            source.service or source.deployment,
            source.port,
            source.poll_s,
        )
    if source.scale:
        scaler = KubernetesScaler(source.deployment, source.namespace)
        clients.append(scaler.client)
        autoscalers.append(Autoscaler(route, scaler, route.config, metrics))
        startup.append(_refresh(scaler))
    elif route.config.bounds[0] == 0:
        # Another scaler (KEDA) lifts it from zero on the queue metric: requests wait for it.
        route.wake = _external_wake
    return discovery.run()


def _external_wake() -> None:
    """Nothing to do: an outside scaler sees the queued requests and adds a replica."""


async def _refresh(scaler: KubernetesScaler) -> None:
    """Learn the Deployment's current replicas before the autoscaler first decides."""
    from llmhost.gateway.kube_api import KubernetesError

    try:
        await scaler.refresh()
    except KubernetesError as exc:
        log.warning("cannot read replicas of %s: %s", scaler.deployment, exc)


async def _start_all(
    supervisors: list[tuple[LocalSupervisor, int]], startup: list[Coroutine[Any, Any, None]]
) -> None:
    await asyncio.gather(*(sup.scale(n) for sup, n in supervisors), *startup)


def _up(replica_set: ReplicaSet, replica: Replica) -> bool | None:
    if replica not in replica_set.replicas:
        return None
    return replica.state is ReplicaState.READY


def banner(url: str, config: Config) -> str:
    """What `llmhost up` prints once it serves: the URL and examples to copy."""
    name = config.models[0].name
    hello = '[{"role": "user", "content": "Say hello"}]'
    open_access = config.server.auth == "open"
    bearer = "" if open_access else ' -H "Authorization: Bearer $LLMHOST_API_KEY"'
    api_key = '"unused"' if open_access else 'os.environ["LLMHOST_API_KEY"]'
    lines = [
        "",
        f"llmhost is serving {', '.join(m.name for m in config.models)} on {url}"
        "  (Ctrl-C stops everything)",
    ]
    lines += [f"  {m.name}: {m.description}" for m in config.models if m.description]
    if open_access:
        lines += ["", "  *** OPEN ACCESS: no API key is required (auth: open, loopback only) ***"]
    else:
        lines += [
            "",
            "  Every request needs an API key; make one with:",
            "    export LLMHOST_API_KEY=$(llmhost keys create --tenant me --quiet)",
        ]
    lines += [
        "",
        f"  curl {url}/v1/chat/completions -H 'Content-Type: application/json'{bearer} \\",
        f'    -d \'{{"model": "{name}", "max_tokens": 64, "messages": {hello}}}\'',
        "",
        f"  {sys.executable} -c 'import os; from openai import OpenAI; "
        f'c = OpenAI(base_url="{url}/v1", api_key={api_key}); \\',
        f'print(c.chat.completions.create(model="{name}", max_tokens=64, \\',
        f"messages={hello}).choices[0].message.content)'",
        "",
        f"  metrics: {url}/metrics   readiness: {url}/ready",
    ]
    return "\n".join(lines) + "\n"


def serve(config: Config, on_ready: Callable[[str], None] = lambda url: None) -> None:
    """Prepare engines and run the gateway in the foreground until SIGINT or SIGTERM."""
    import uvloop

    models = prepare(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_gateway(config, models, stop, on_ready)

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())
