"""Prefix affinity: consistent hashing with bounded loads (CHWBL) on the prompt's prefix.

Requests whose prompts start alike (a shared system prompt) hash to the same point on a ring of
virtual nodes and go to the replica that owns it, where the engine's prefix cache already holds
that prefix's KV. A replica whose in-flight count would exceed `load_factor` x the mean is
skipped for the next one on the ring, so a hot prefix spills instead of piling up. The ring is
rebuilt only when the set of replicas changes; lookup is a binary search.

After Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads" (2018), as
KubeAI's PrefixHash and vLLM production-stack's prefix router use it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Collection, Sequence

from llmhost.engines.replicas import Replica

VIRTUAL_NODES = 100


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class PrefixAffinity:
    """CHWBL over the replicas' ids."""

    def __init__(self, load_factor: float = 1.25) -> None:
        self.load_factor = load_factor
        self._ids: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []

    def _ring(self, replicas: Sequence[Replica]) -> None:
        ids = tuple(sorted(r.id for r in replicas))
        if ids == self._ids:
            return
        nodes = sorted((_hash(f"{rid}#{v}".encode()), rid) for rid in ids
                       for v in range(VIRTUAL_NODES))  # fmt: skip
        self._ids = ids
        self._points = [point for point, _ in nodes]
        self._owners = [rid for _, rid in nodes]

    def pick(
        self, key: bytes, replicas: Sequence[Replica], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        """The first replica clockwise from the key's point whose load stays within bound."""
        candidates = [r for r in replicas if r not in exclude]
        if not candidates:
            return None
        self._ring(replicas)
        by_id = {r.id: r for r in candidates}
        total = sum(r.inflight for r in replicas) + 1  # counting this request
        bound = math.ceil(self.load_factor * total / len(replicas))
        start = bisect.bisect(self._points, _hash(key)) % len(self._points)
        seen: set[str] = set()
        first: Replica | None = None
        for step in range(len(self._points)):
            rid = self._owners[(start + step) % len(self._points)]
            if rid in seen:
                continue
            seen.add(rid)
            replica = by_id.get(rid)
            if replica is None:
                continue
            first = first or replica
            if replica.inflight + 1 <= bound:
                return replica
            if len(seen) == len(self._ids):
                break
        return first


def prefix_key(payload: dict[str, object], chars: int) -> bytes:
    """The routing key: the first `chars` characters of the system prompt plus the first user
    turn (chat), or of the prompt (completions)."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            parts.append(_text(message.get("content")))
            if message.get("role") == "user" or sum(map(len, parts)) >= chars:
                break
        return "\n".join(parts)[:chars].encode()
    prompt = payload.get("prompt")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt else ""
    return str(prompt)[:chars].encode() if prompt is not None else b""


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""
