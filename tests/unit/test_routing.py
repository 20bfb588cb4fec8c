"""Routing strategies on replicas with set loads: no engine needed."""

from __future__ import annotations

import time
from collections import Counter

from llmhost.engines.base import Load
from llmhost.engines.replicas import Replica
from llmhost.gateway.router import strategy
from llmhost.gateway.router.least_load import LeastLoad
from llmhost.gateway.router.prefix import PrefixAffinity, prefix_key


def replicas(n: int) -> list[Replica]:
    return [Replica(id=f"r{i}", url=f"http://r{i}") for i in range(n)]


def test_least_load_prefers_the_engines_own_fresh_report() -> None:
    rs = replicas(3)
    rs[0].inflight, rs[1].inflight, rs[2].inflight = 1, 0, 0
    rs[1].load, rs[1].load_at = Load(running=4, waiting=2), time.monotonic()  # busy via others
    rs[2].load, rs[2].load_at = Load(running=9, waiting=0), time.monotonic() - 60  # stale
    assert LeastLoad().pick(b"", rs) is rs[2]  # stale report ignored: in-flight 0 wins
    rs[2].inflight = 2
    assert LeastLoad().pick(b"", rs) is rs[0]


def test_least_load_spreads_ties() -> None:
    rs = replicas(4)
    ll = LeastLoad()
    assert len({ll.pick(b"", rs).id for _ in range(4)}) == 4  # type: ignore[union-attr]


def test_prefix_sends_equal_prefixes_to_one_replica_and_spreads_different_ones() -> None:
    rs = replicas(4)
    pa = PrefixAffinity()
    assert len({pa.pick(b"system prompt A", rs).id for _ in range(20)}) == 1  # type: ignore[union-attr]
    owners = Counter(pa.pick(f"prompt {i}".encode(), rs).id for i in range(400))  # type: ignore[union-attr]
    assert len(owners) == 4 and min(owners.values()) > 40  # roughly even over 4 replicas


def test_prefix_spills_past_the_load_bound_and_comes_back() -> None:
    rs = replicas(4)
    pa = PrefixAffinity(load_factor=1.25)
    home = pa.pick(b"hot prefix", rs)
    assert home is not None
    home.inflight = 3  # others idle: mean with this request is 1, bound ceil(1.25) = 2
    spill = pa.pick(b"hot prefix", rs)
    assert spill is not None and spill is not home
    assert pa.pick(b"hot prefix", rs) is spill  # the spill target is stable too
    home.inflight = 0
    assert pa.pick(b"hot prefix", rs) is home


def test_prefix_never_spills_below_the_replicas_own_slots() -> None:
    rs = replicas(4)
    pa = PrefixAffinity(load_factor=1.25, slots=4)
    home = pa.pick(b"hot prefix", rs)
    assert home is not None
    home.inflight = 3  # over 1.25 x the mean, but the engine batches 4 side by side
    assert pa.pick(b"hot prefix", rs) is home
    home.inflight = 4  # all its slots busy: now it spills
    assert pa.pick(b"hot prefix", rs) is not home


def test_prefix_ring_keeps_keys_when_a_replica_goes() -> None:
    rs = replicas(4)
    pa = PrefixAffinity()
    before = {i: pa.pick(f"k{i}".encode(), rs).id for i in range(200)}  # type: ignore[union-attr]
    after = {i: pa.pick(f"k{i}".encode(), rs[:3]).id for i in range(200)}  # type: ignore[union-attr]
    moved = [i for i in before if before[i] != after[i]]
    assert all(before[i] == "r3" for i in moved)  # only the removed replica's keys move


def test_prefix_key_is_system_plus_first_user_turn() -> None:
    chat = {"messages": [{"role": "system", "content": "Be terse."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                         {"role": "assistant", "content": "Hello"},
                         {"role": "user", "content": "Again"}]}  # fmt: skip
    assert prefix_key(chat, 200) == b"Be terse.\nHi"
    assert prefix_key(chat, 4) == b"Be t"
    assert prefix_key({"prompt": ["abcdef"]}, 3) == b"abc"
    assert prefix_key({}, 3) == b""


def test_strategy_names() -> None:
    assert type(strategy("prefix")).__name__ == "PrefixAffinity"
    assert type(strategy("least-load")).__name__ == "LeastLoad"
    assert type(strategy("round-robin")).__name__ == "RoundRobin"


def test_prefix_gives_no_replica_more_prefixes_than_it_has_slots_while_another_has_room() -> None:
    rs = replicas(4)
    pa = PrefixAffinity(slots=2)
    homes = {i: pa.pick(f"system prompt {i}".encode(), rs).id for i in range(8)}  # type: ignore[union-attr]
    assert sorted(Counter(homes.values()).values()) == [2, 2, 2, 2]
    again = {i: pa.pick(f"system prompt {i}".encode(), rs).id for i in range(8)}  # type: ignore[union-attr]
    assert again == homes  # a prefix keeps the replica it was first given
    ninth = pa.pick(b"system prompt 8", rs)  # all full: the ring decides
    assert ninth is not None
