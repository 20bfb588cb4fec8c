"""`llmhost.yaml` and environment overrides, read into typed settings.

With no file, llmhost serves the embedded model (Gemma 3 270M on llama.cpp) with no further
setup. Environment variables `LLMHOST_<SERVER FIELD>` (e.g. `LLMHOST_PORT=9000`) override the
`server:` section, so a container can be configured without a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmhost.errors import UsageError

DEFAULT_PATH = Path("llmhost.yaml")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
EMBEDDED = "embedded"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Role = Literal["operator", "auditor", "viewer"]


class OidcConfig(_Strict):
    """Bearer tokens (JWTs) from an OpenID Connect provider, accepted next to API keys."""

    issuer: str = Field(min_length=1, description="The token's `iss`, exactly.")
    audience: str = Field(min_length=1, description="The `aud` the gateway requires.")
    jwks_url: str | None = Field(
        None, description="The signing keys; default: `jwks_uri` of the issuer's discovery."
    )
    tenant_claim: str = Field("tenant", description="The claim that names the tenant.")
    models_claim: str | None = Field(
        None, description="A claim (list, or space-separated) of allowed models; None: all."
    )
    groups_claim: str = Field("groups", description="The claim listing the caller's groups.")
    admin_roles: dict[str, Role] = Field(
        default_factory=dict, description="Groups whose members may use /admin/, and as what."
    )
    algorithms: tuple[str, ...] = Field(("RS256", "ES256", "EdDSA"), min_length=1)
    leeway_s: float = Field(30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf.")
    jwks_refresh_min_s: float = Field(
        30.0, ge=0, description="Shortest time between JWKS fetches on an unknown `kid`."
    )
    jwks_ttl_s: float = Field(3600.0, gt=0, description="How long fetched keys are trusted.")
    rpm: int | None = Field(None, ge=1, description="Requests per minute per token subject.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute per token subject.")
    max_concurrent: int | None = Field(None, ge=1, description="Requests at once per subject.")

    @model_validator(mode="after")
    def _known_algorithms(self) -> OidcConfig:
        unknown = set(self.algorithms) - {"RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"}
        if unknown:
            raise ValueError(
                f"algorithms: {', '.join(sorted(unknown))} not allowed (no HS*, no none)"
            )
        return self


class OtelConfig(_Strict):
    """OpenTelemetry export over OTLP/HTTP (needs the `otel` extra: pip install llmhost[otel])."""

    endpoint: str = Field(
        "http://127.0.0.1:4318", description="The collector's OTLP/HTTP base URL."
    )
    service_name: str = Field("llmhost-gateway", description="The resource's service.name.")
    traces: bool = Field(True, description="A trace per request (gateway, queue, upstream).")
    metrics: bool = Field(True, description="GenAI semantic-convention metrics.")
    export_interval_s: float = Field(10.0, gt=0, description="How often metrics are pushed.")


class ServerConfig(_Strict):
    """Where the gateway listens and the limits every request meets."""

    host: str = Field(
        "127.0.0.1", description="Listen address; auth: open is allowed only on loopback."
    )
    port: int = Field(8000, ge=0, le=65535, description="Listen port.")
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Bodies over this get 413, refused from Content-Length before reading.",
    )
    first_byte_timeout_s: float = Field(
        60.0, gt=0, description="Streams: the engine's first chunk must come within this (504)."
    )
    total_timeout_s: float = Field(
        600.0, gt=0, description="Any request: the whole answer within this (504)."
    )
    retry_after_s: int = Field(2, ge=1, description="Retry-After on 503 answers.")
    health_interval_s: float = Field(
        2.0, gt=0, description="Active health checks of every replica, this often."
    )
    body_read_timeout_s: float = Field(
        30.0, gt=0, description="a client must send its body within this"
    )
    # A connection must complete its request headers within this of opening (or of its last
    # response, when kept alive), else it is closed: the slow-headers (slowloris) guard.
    idle_timeout_s: float = Field(
        15.0,
        gt=0,
        description="A connection must finish its request headers within this (slowloris guard).",
    )
    # Tenancy: every request needs an API key unless auth is "open" (loopback only).
    auth: Literal["keys", "open"] = Field(
        "keys",
        description="keys: every request needs a key or OIDC token; open: none (loopback only).",
    )
    store_url: str | None = Field(
        None, description="sqlite:///PATH (default: llmhost's data folder) or postgresql://"
    )
    redis_url: str | None = Field(
        None, description="shared limit counters for several gateways; None: in-process"
    )
    scaler_lease: str | None = Field(
        None, description="a Lease name: gateways elect one autoscaler through it"
    )
    admin_key_env: str = Field(
        "LLMHOST_ADMIN_KEY", description="env var holding the /admin/ API's key"
    )
    default_max_tokens: int = Field(
        1024, ge=1, description="reserved when a request sets no max_tokens"
    )
    audit_jsonl: str | None = Field(
        None, description='also write audit records as JSON lines: "-" or a path'
    )
    audit_retention_days: int = Field(
        90, ge=1, description="Request audit records older than this are deleted."
    )
    admin_audit_retention_days: int = Field(
        365, ge=1, description="the admin trail's own retention"
    )
    oidc: OidcConfig | None = Field(None, description="accept OIDC bearer tokens too")
    otel: OtelConfig | None = Field(None, description="export OpenTelemetry traces and metrics")
    auth_failure_window_s: float = Field(
        60.0,
        gt=0,
        description="Failed authentications are summarised per source and reason per window.",
    )
    # Audit records waiting for the store (during an outage); past this the oldest are dropped
    # and counted in llmhost_audit_dropped_total.
    audit_queue_max: int = Field(
        100_000,
        ge=100,
        description="Audit records kept while the store is down; past it the oldest drop, counted.",
    )
    # /metrics: on its own port (None: on the main port), behind a bearer token read from this
    # environment variable (None: no token), and with per-tenant series only when asked.
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port only (None: on the main port).",
    )
    metrics_key_env: str | None = Field(
        None, description="Environment variable holding a bearer token /metrics then requires."
    )
    metrics_tenant_labels: bool = Field(
        False, description="Export per-tenant series (tokens this month, budget share)."
    )
    # One line per request on the log (method, path, status, model, tokens, timings, key
    # prefix; never prompt or completion text); `llmhost up --quiet` turns it off.
    access_log: bool = Field(
        True, description="One line per request (never text); llmhost up --quiet turns it off."
    )
    # The web console at /ui (admin principals only). None: on when listening on loopback
    # (`llmhost up`), off elsewhere (cluster renders set it only with `--console`).
    console: bool | None = Field(
        None, description="The web console at /ui; unset: on only when listening on loopback."
    )

    def console_on(self) -> bool:
        """Whether the gateway serves the web console at /ui."""
        return self.host in LOOPBACK if self.console is None else self.console

    def metrics_key(self) -> str | None:
        """The token /metrics requires, if one is configured and set."""
        return os.environ.get(self.metrics_key_env) or None if self.metrics_key_env else None

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> ServerConfig:
        if self.auth == "open" and self.host not in LOOPBACK:
            raise ValueError(f"auth 'open' is allowed only on loopback, not on host {self.host}")
        return self


class ClusterSource(_Strict):
    """Replicas that are pods of an engine Deployment on Kubernetes, found through the
    EndpointSlices of its Service and, with `scale`, scaled through the Deployment."""

    deployment: str = Field(
        min_length=1, description="The engine Deployment (and by default its Service)."
    )
    service: str | None = Field(None, description="default: the deployment's name")
    inference_pool: str | None = Field(
        None, description="find replicas through this InferencePool instead"
    )
    namespace: str | None = Field(None, description="default: the gateway pod's own namespace")
    port: int = Field(8000, ge=1, le=65535, description="The engine's port on each pod.")
    scale: bool = Field(True, description="the gateway's autoscaler sets the Deployment's replicas")
    poll_s: float = Field(2.0, gt=0, description="how often the endpoint list is read")


class CanaryConfig(_Strict):
    """A share of a model's requests that goes to another model: a new revision on trial."""

    model: str = Field(min_length=1, description="The model (in this config) taking the share.")
    percent: float = Field(gt=0, lt=100, description="Share of requests, in percent.")


class ModelConfig(_Strict):
    """One served model: its names, its engine and where its replicas come from."""

    name: str = Field(min_length=1, description="The name clients ask for.")
    aliases: tuple[str, ...] = Field((), description="Other names for the same model.")
    description: str | None = Field(
        None, description="What the model is, for clients (/v1/models) and the banner."
    )
    engine: Literal["llamacpp", "vllm", "ollama", "tgi", "openai"] = Field(
        "llamacpp", description="The engine kind: its health, launch and load metrics."
    )
    # Managed locally (llamacpp, vllm): weights and replica count. External: urls.
    weights: str | None = Field(
        None, description='"embedded", a local path, or hf://owner/repo/file[@revision]'
    )
    replicas: int = Field(1, ge=0, le=64, description="Replicas to run (managed) or expect.")
    urls: tuple[str, ...] = Field(
        (), description="External replicas' base URLs (http:// or https://)."
    )
    kubernetes: ClusterSource | None = Field(
        None, description="on a cluster: pods of an engine Deployment"
    )
    upstream_model: str | None = Field(
        None, description="the name the engine expects, when not `name`"
    )
    fallback: tuple[str, ...] = Field(
        (), description="models to try, in order, when this one cannot serve"
    )
    canary: CanaryConfig | None = Field(
        None, description="send a share of requests to a new revision"
    )
    api_key_env: str | None = Field(
        None, description="environment variable holding the engine's own API key"
    )
    context: int = Field(4096, ge=16, description="tokens per sequence")
    parallel: int = Field(4, ge=1, le=4096, description="sequences per replica")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per llama-server replica (default: cores shared evenly).",
    )
    chat_template: str | None = Field(
        None, description="llama.cpp built-in template name, a .jinja file, or Jinja text."
    )
    args: tuple[str, ...] = Field((), description="extra engine flags")
    # Routing between replicas, and the queue in front of them.
    routing: Literal["least-load", "prefix", "round-robin"] = Field(
        "least-load", description="least-load, prefix (CHWBL on the prompt prefix) or round-robin."
    )
    load_factor: float = Field(1.25, ge=1.0, description="prefix: spill past this x the mean load")
    prefix_chars: int = Field(
        200, ge=1, description="prefix: characters of the prompt that form the key"
    )
    max_inflight_per_replica: int | None = Field(None, ge=1, description="default: 4 x parallel")
    queue_size: int = Field(64, ge=0, description="requests waiting for a replica; past it 503")
    queue_wait_s: float = Field(
        30.0, gt=0, description="longest wait in the queue (and for a cold start)"
    )
    # Scaling (managed models): between min and max replicas by in-flight load, to zero when idle.
    min_replicas: int | None = Field(None, ge=0, description="default: replicas")
    max_replicas: int | None = Field(None, ge=1, description="default: replicas")
    target_inflight: float | None = Field(None, gt=0, description="per replica; default: parallel")
    scale_up_delay_s: float = Field(
        2.0, ge=0, description="A wish for more replicas must hold this long."
    )
    scale_down_delay_s: float = Field(
        60.0, ge=0, description="A wish for fewer replicas must hold this long."
    )
    idle_to_zero_s: float | None = Field(
        None, gt=0, description="scale to zero after this long idle"
    )

    @property
    def capacity(self) -> int:
        """Requests one replica takes at once before the rest wait in the queue."""
        return self.max_inflight_per_replica or 4 * self.parallel

    @property
    def bounds(self) -> tuple[int, int]:
        """(min, max) replicas."""
        low = self.replicas if self.min_replicas is None else self.min_replicas
        high = self.replicas if self.max_replicas is None else self.max_replicas
        return low, high

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        sources = [s for s in ("weights", "urls", "kubernetes") if getattr(self, s)]
        if len(sources) > 1:
            both = " and ".join(repr(s) for s in sources)
            raise ValueError(f"give one of 'weights', 'urls' or 'kubernetes', not {both}")
        if not sources:
            raise ValueError(
                "give 'weights' (embedded, a GGUF path or hf://...), 'urls' or 'kubernetes'"
            )
        if self.weights and self.engine not in ("llamacpp", "vllm"):
            raise ValueError(f"engine '{self.engine}' runs outside llmhost here: give its 'urls'")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"url '{url}' must start with http:// or https://")
        low, high = self.bounds
        if not low <= self.replicas <= high:
            raise ValueError(
                f"replicas {self.replicas} must be within min_replicas {low} and "
                f"max_replicas {high}"
            )
        if self.idle_to_zero_s is not None and (low != 0 or not self.scalable):
            raise ValueError(
                "idle_to_zero_s needs min_replicas: 0 and a model llmhost scales "
                "(managed, or kubernetes with scale: true)"
            )
        return self

    @property
    def managed(self) -> bool:
        """True when llmhost runs this model's engine processes itself."""
        return self.weights is not None

    @property
    def scalable(self) -> bool:
        """True when llmhost decides this model's replica count (locally or on a cluster)."""
        return self.managed or (self.kubernetes is not None and self.kubernetes.scale)


class Config(_Strict):
    """The whole gateway: server settings and the models it serves."""

    server: ServerConfig = ServerConfig()
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    # Tiers: a name (usable as the request's model, or in the x-llmhost-tier header) for an
    # ordered list of models; the first that can serve takes the request.
    tiers: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for model in self.models:
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name or alias '{name}' is used twice")
                seen.add(name)
        for model in self.models:
            for target in model.fallback:
                if target not in seen:
                    raise ValueError(f"model '{model.name}': fallback '{target}' is not a model")
            if model.canary is not None and model.canary.model not in seen:
                raise ValueError(
                    f"model '{model.name}': canary '{model.canary.model}' is not a model"
                )
        for tier, chain in self.tiers.items():
            if tier in seen:
                raise ValueError(f"tier '{tier}' has the name of a model or alias")
            if not chain:
                raise ValueError(f"tier '{tier}' lists no model")
            for target in chain:
                if target not in seen:
                    raise ValueError(f"tier '{tier}': '{target}' is not a model")
        return self


def embedded_model(replicas: int = 1) -> ModelConfig:
    """The default model: Gemma 3 270M Q4_K_M on llama.cpp with Gemma's chat template."""
    from llmhost.engines.weights import EMBEDDED_MODEL

    return ModelConfig(
        name=EMBEDDED_MODEL,
        aliases=("default",),
        description=(
            "Gemma 3 270M, a pretrained base model: it continues text rather than following "
            "instructions and rarely stops by itself; set max_tokens"
        ),
        weights=EMBEDDED,
        replicas=replicas,
        chat_template="gemma",
    )


def _env_overrides(environ: dict[str, str]) -> dict[str, str]:
    fields = ServerConfig.model_fields
    return {name: environ[key] for name in fields if (key := f"LLMHOST_{name.upper()}") in environ}


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read `path` (or `LLMHOST_CONFIG`, or ./llmhost.yaml if present) and the environment."""
    environ = dict(os.environ) if environ is None else environ
    if path is None and environ.get("LLMHOST_CONFIG"):
        path = Path(environ["LLMHOST_CONFIG"])
    if path is None and DEFAULT_PATH.is_file():
        path = DEFAULT_PATH
    raw: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise UsageError(f"{path} is not valid YAML{where}: {problem}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{path}: expected a mapping with 'models' and 'server'")
        raw = loaded
    raw.setdefault("models", [embedded_model().model_dump()])
    server = raw.get("server") or {}
    if not isinstance(server, dict):
        raise UsageError(f"{path}: 'server' must be a mapping")
    raw["server"] = {**server, **_env_overrides(environ)}
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(f"{path or 'configuration'}: {_describe(exc)}") from None


def with_server(config: Config, **overrides: object) -> Config:
    """`config` with some server fields replaced (from command-line flags), re-validated."""
    try:
        server = ServerConfig.model_validate({**config.server.model_dump(), **overrides})
    except ValidationError as exc:
        raise UsageError(_describe(exc)) from None
    return config.model_copy(update={"server": server})


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)
