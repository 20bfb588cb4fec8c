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


class ServerConfig(_Strict):
    """Where the gateway listens and the limits every request meets."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    first_byte_timeout_s: float = Field(60.0, gt=0)
    total_timeout_s: float = Field(600.0, gt=0)
    retry_after_s: int = Field(2, ge=1)
    health_interval_s: float = Field(2.0, gt=0)
    body_read_timeout_s: float = Field(30.0, gt=0)  # a client must send its body within this
    # A connection must complete its request headers within this of opening (or of its last
    # response, when kept alive), else it is closed: the slow-headers (slowloris) guard.
    idle_timeout_s: float = Field(15.0, gt=0)
    # Tenancy: every request needs an API key unless auth is "open" (loopback only).
    auth: Literal["keys", "open"] = "keys"
    store_url: str | None = None  # sqlite:///PATH (default: llmhost's data folder) or postgresql://
    redis_url: str | None = None  # shared limit counters for several gateways; None: in-process
    admin_key_env: str = "LLMHOST_ADMIN_KEY"  # env var holding the /admin/ API's key
    default_max_tokens: int = Field(1024, ge=1)  # reserved when a request sets no max_tokens
    audit_jsonl: str | None = None  # also write audit records as JSON lines: "-" or a path
    audit_retention_days: int = Field(90, ge=1)

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> ServerConfig:
        if self.auth == "open" and self.host not in LOOPBACK:
            raise ValueError(f"auth 'open' is allowed only on loopback, not on host {self.host}")
        return self


class ClusterSource(_Strict):
    """Replicas that are pods of an engine Deployment on Kubernetes, found through the
    EndpointSlices of its Service and, with `scale`, scaled through the Deployment."""

    deployment: str = Field(min_length=1)
    service: str | None = None  # default: the deployment's name
    namespace: str | None = None  # default: the gateway pod's own namespace
    port: int = Field(8000, ge=1, le=65535)
    scale: bool = True  # the gateway's autoscaler sets the Deployment's replicas
    poll_s: float = Field(2.0, gt=0)  # how often the endpoint list is read


class ModelConfig(_Strict):
    """One served model: its names, its engine and where its replicas come from."""

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    engine: Literal["llamacpp", "vllm", "ollama", "tgi", "openai"] = "llamacpp"
    # Managed locally (llamacpp, vllm): weights and replica count. External: urls.
    weights: str | None = None  # "embedded", a local path, or hf://owner/repo/file[@revision]
    replicas: int = Field(1, ge=0, le=64)
    urls: tuple[str, ...] = ()
    kubernetes: ClusterSource | None = None  # on a cluster: pods of an engine Deployment
    upstream_model: str | None = None  # the name the engine expects, when not `name`
    fallback: tuple[str, ...] = ()  # models to try, in order, when this one cannot serve
    api_key_env: str | None = None  # environment variable holding the engine's own API key
    context: int = Field(4096, ge=16)  # tokens per sequence
    parallel: int = Field(4, ge=1, le=256)  # sequences per replica
    threads: int | None = Field(None, ge=1)
    chat_template: str | None = None
    args: tuple[str, ...] = ()  # extra engine flags
    # Routing between replicas, and the queue in front of them.
    routing: Literal["least-load", "prefix", "round-robin"] = "least-load"
    load_factor: float = Field(1.25, ge=1.0)  # prefix: spill past this x the mean load
    prefix_chars: int = Field(200, ge=1)  # prefix: characters of the prompt that form the key
    max_inflight_per_replica: int | None = Field(None, ge=1)  # default: 4 x parallel
    queue_size: int = Field(64, ge=0)  # requests waiting for a replica; past it 503
    queue_wait_s: float = Field(30.0, gt=0)  # longest wait in the queue (and for a cold start)
    # Scaling (managed models): between min and max replicas by in-flight load, to zero when idle.
    min_replicas: int | None = Field(None, ge=0)  # default: replicas
    max_replicas: int | None = Field(None, ge=1)  # default: replicas
    target_inflight: float | None = Field(None, gt=0)  # per replica; default: parallel
    scale_up_delay_s: float = Field(2.0, ge=0)
    scale_down_delay_s: float = Field(60.0, ge=0)
    idle_to_zero_s: float | None = Field(None, gt=0)  # scale to zero after this long idle

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
            raise ValueError("give 'weights' (embedded, a GGUF path or hf://...), 'urls' or "
                             "'kubernetes'")  # fmt: skip
        if self.weights and self.engine not in ("llamacpp", "vllm"):
            raise ValueError(f"engine '{self.engine}' runs outside llmhost here: give its 'urls'")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"url '{url}' must start with http:// or https://")
        low, high = self.bounds
        if not low <= self.replicas <= high:
            raise ValueError(f"replicas {self.replicas} must be within min_replicas {low} and "
                             f"max_replicas {high}")  # fmt: skip
        if self.idle_to_zero_s is not None and (low != 0 or not self.scalable):
            raise ValueError("idle_to_zero_s needs min_replicas: 0 and a model llmhost scales "
                             "(managed, or kubernetes with scale: true)")  # fmt: skip
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
            raise UsageError(f"{path} is not valid YAML: {exc}") from None
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
