"""Group coordinators are placed by rendezvous hashing over the live brokers."""

from __future__ import annotations

from collections import Counter

import pytest

from broker.coordination.placement import rendezvous_pick

pytestmark = pytest.mark.unit

KEYS = [f"group-{i}" for i in range(2000)]


def test_every_order_of_the_same_nodes_gives_the_same_node() -> None:
    for key in KEYS[:200]:
        assert rendezvous_pick([1, 2, 3, 4], key) == rendezvous_pick([4, 2, 3, 1], key)


def test_no_nodes_gives_none_and_one_node_gives_it() -> None:
    assert rendezvous_pick([], "g") is None
    assert rendezvous_pick([7], "g") == 7


def test_keys_spread_over_the_nodes() -> None:
    counts = Counter(rendezvous_pick([1, 2, 3, 4, 5], key) for key in KEYS)
    assert set(counts) == {1, 2, 3, 4, 5}
    # 400 expected per node; a fair hash stays well inside this band.
    assert all(300 <= n <= 500 for n in counts.values()), counts


def test_a_node_leaving_moves_only_its_own_keys() -> None:
    before = {key: rendezvous_pick([1, 2, 3, 4, 5], key) for key in KEYS}
    after = {key: rendezvous_pick([1, 2, 4, 5], key) for key in KEYS}
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved == {key for key in KEYS if before[key] == 3}
    # Node 3's keys spread over the others rather than landing on one.
    assert len({after[key] for key in moved}) == 4


def test_a_node_joining_takes_keys_only_for_itself() -> None:
    before = {key: rendezvous_pick([1, 2, 3], key) for key in KEYS}
    after = {key: rendezvous_pick([1, 2, 3, 4], key) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert moved and all(after[key] == 4 for key in moved)
    assert 350 <= len(moved) <= 650
