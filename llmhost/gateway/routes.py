"""What the gateway knows about each served model: names, replicas, strategy, upstream headers."""

from __future__ import annotations

import os

from llmhost.config import ModelConfig
from llmhost.engines.replicas import ReplicaSet
from llmhost.gateway.metrics import ModelMetrics
from llmhost.gateway.router import RoutingStrategy
from llmhost.gateway.router.round_robin import RoundRobin


class Route:
    """One model as the request path needs it, resolved once at start-up."""

    def __init__(self, config: ModelConfig, replica_set: ReplicaSet, metrics: ModelMetrics) -> None:
        self.config = config
        self.name = config.name
        self.upstream_model = config.upstream_model or config.name
        self.replica_set = replica_set
        self.metrics = metrics
        self.strategy: RoutingStrategy = RoundRobin()
        self.headers = b""  # extra header lines for the engine, each ending in CRLF
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if key:  # engine credentials come from config, never from the client
                self.headers = f"Authorization: Bearer {key}\r\n".encode()
