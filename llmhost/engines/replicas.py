"""Replicas of a model as the gateway sees them: where each one is and whether it can serve.

The local supervisor (or, on a cluster, the Kubernetes scaler) publishes replicas into a
`ReplicaSet`; the gateway's health checks and the router read and update it. Everything here runs
on the gateway's event loop, so no locks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from llmhost.engines.base import EngineAdapter, Load


class ReplicaState(enum.Enum):
    """Where a replica is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"  # finishing its requests before it stops; takes no new ones
    DOWN = "down"


@dataclass(eq=False)
class Replica:
    """One engine endpoint serving a model."""

    id: str
    url: str  # base URL without a trailing slash, e.g. http://127.0.0.1:41234
    state: ReplicaState = ReplicaState.STARTING
    inflight: int = 0  # requests the gateway has open on it now
    failures: int = 0  # consecutive failed requests or health checks
    error_sources: set[str] = field(default_factory=set)  # who saw the current run of errors
    load: Load | None = None  # the engine's own report, when it has one
    load_at: float = 0.0  # monotonic time of that report
    managed: bool = False  # started by the local supervisor, which owns its start-up
    ejected_until: float = 0.0  # monotonic time before which health checks may not readmit it


StateListener = Callable[["ReplicaSet", Replica], None]


class ReplicaSet:
    """The replicas of one model and the adapter that says how to talk to them."""

    def __init__(self, model: str, adapter: EngineAdapter) -> None:
        self.model = model
        self.adapter = adapter
        self.replicas: list[Replica] = []
        self._listeners: list[StateListener] = []

    def on_change(self, listener: StateListener) -> None:
        """Call `listener` whenever a replica is added, removed or changes state."""
        self._listeners.append(listener)

    def add(self, replica: Replica) -> None:
        """Publish a new replica."""
        self.replicas.append(replica)
        self._notify(replica)

    def remove(self, replica: Replica) -> None:
        """Withdraw a replica (stopped or scaled away)."""
        if replica in self.replicas:
            self.replicas.remove(replica)
            replica.state = ReplicaState.DOWN
            self._notify(replica)

    def set_state(self, replica: Replica, state: ReplicaState) -> None:
        """Record a replica's new state and tell the listeners if it changed."""
        if replica.state is not state:
            replica.state = state
            if state is ReplicaState.READY:
                replica.failures = 0
                replica.error_sources.clear()
            self._notify(replica)

    def ready(self) -> list[Replica]:
        """Replicas that can take a request now."""
        return [r for r in self.replicas if r.state is ReplicaState.READY]

    def _notify(self, replica: Replica) -> None:
        for listener in self._listeners:
            listener(self, replica)
