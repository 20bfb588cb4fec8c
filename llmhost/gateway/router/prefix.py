"""Prefix affinity: consistent hashing with bounded loads (CHWBL) on the prompt's prefix.

Requests whose prompts start alike (a shared system prompt) hash to the same point on a ring of
virtual nodes and go to the replica that owns it, where the engine's prefix cache already holds
that prefix's KV. Two bounds keep that from piling up: a replica whose in-flight count would
exceed `load_factor` x the mean (and its own `slots`) is skipped for the next one on the ring (a
hot prefix spills; below its slots, an engine batches its requests side by side, so spilling
them would only trade a cache hit for a miss elsewhere),
and a new prefix is not given to a replica that already serves as many distinct prefixes as it
has cache slots (`slots`), while another has room, since a replica cycling through more
prefixes than it can cache misses on all of them. A prefix keeps the replica it was first
given (remembered for the most recent 10,000 prefixes). The ring is rebuilt only when the set of
replicas changes; lookup is a binary search.

After Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads" (2018), as
KubeAI's PrefixHash and vLLM production-stack's prefix router use it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterator, Sequence

from llmhost.engines.replicas import Replica

VIRTUAL_NODES = 100
REMEMBERED_PREFIXES = 10_000


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class PrefixAffinity:
    """CHWBL over the replicas' ids, with prefixes per replica capped at its cache slots."""

    def __init__(self, load_factor: float = 1.25, slots: int | None = None) -> None:
        self.load_factor = load_factor
        self.slots = slots
        self._ids: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []
        self._home: OrderedDict[bytes, str] = OrderedDict()  # prefix -> replica id it was given
        self._homes = Counter[str]()  # replica id -> prefixes given to it

    def _ring(self, replicas: Sequence[Replica]) -> None:
        ids = tuple(sorted(r.id for r in replicas))
        if ids == self._ids:
            return
        nodes = sorted(
            (_hash(f"{rid}#{v}".encode()), rid) for rid in ids for v in range(VIRTUAL_NODES)
        )
        self._ids = ids
        self._points = [point for point, _ in nodes]
        self._owners = [rid for _, rid in nodes]
        for key in [k for k, rid in self._home.items() if rid not in ids]:
            self._forget(key)

    def _walk(self, key: bytes) -> Iterator[str]:
        """Distinct replica ids clockwise from the key's point."""
        start = bisect.bisect(self._points, _hash(key)) % len(self._points)
        seen: set[str] = set()
        for step in range(len(self._points)):
            rid = self._owners[(start + step) % len(self._points)]
            if rid not in seen:
                seen.add(rid)
                yield rid
                if len(seen) == len(self._ids):
                    return

    def pick(
        self, key: bytes, replicas: Sequence[Replica], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        """The prefix's replica if within bound, else the next on the ring that is."""
        by_id = {r.id: r for r in replicas if r not in exclude}
        if not by_id:
            return None
        self._ring(replicas)
        total = sum(r.inflight for r in replicas) + 1  # counting this request
        bound = max(self.slots or 1, math.ceil(self.load_factor * total / len(replicas)))
        home = self._home.get(key)
        order = [rid for rid in self._walk(key) if rid in by_id]
        if home in by_id:
            order.remove(home)
            order.insert(0, home)
        within = [rid for rid in order if by_id[rid].inflight + 1 <= bound]
        if home is None and self.slots:
            roomy = [rid for rid in within if self._homes[rid] < self.slots]
            within = roomy or within
        chosen = by_id[within[0] if within else order[0]]
        if home is None:
            self._remember(key, chosen.id)
        else:
            self._home.move_to_end(key)
        return chosen

    def _remember(self, key: bytes, rid: str) -> None:
        self._home[key] = rid
        self._homes[rid] += 1
        while len(self._home) > REMEMBERED_PREFIXES:
            self._forget(next(iter(self._home)))

    def _forget(self, key: bytes) -> None:
        rid = self._home.pop(key)
        self._homes[rid] -= 1


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
