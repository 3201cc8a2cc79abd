"""Deterministic choice of leaders and replica sets. Pure functions of sorted node ids,
so every node that applies the same command picks the same nodes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def ring_after(nodes: Sequence[int], start: int, count: int) -> list[int]:
    """`count` nodes of the sorted ring, beginning with the first node after `start`
    (which need not be on the ring); `start` itself, if present, comes last."""
    ring = sorted(nodes)
    later = [n for n in ring if n > start]
    ordered = later + [n for n in ring if n <= start]
    return ordered[:count]


def across_racks(ordered: Sequence[int], count: int, racks: Mapping[int, str | None] | None) -> list[int]:
    """The first `count` of `ordered` (the leader first), except that a follower on a
    rack not used yet is taken before one on a rack already holding a replica. Nodes
    without a rack never displace others, so with no racks this is plain ring order."""
    if not ordered:
        return []
    racks = racks or {}
    chosen = [ordered[0]]
    used = {racks.get(ordered[0])}
    rest = list(ordered[1:])
    while len(chosen) < count and rest:
        pick = next((n for n in rest if racks.get(n) is not None and racks.get(n) not in used), None)
        if pick is None:
            pick = rest[0]
        rest.remove(pick)
        chosen.append(pick)
        used.add(racks.get(pick))
    return chosen


def round_robin_replicas(
    live: Sequence[int], slot: int, replication_factor: int,
    racks: Mapping[int, str | None] | None = None,
) -> list[int]:
    """Replica set for the partition placed at `slot` of a cluster-wide placement cursor:
    the leader is live[slot mod n], followers the next nodes of the ring (spread over
    racks when nodes have them)."""
    ring = sorted(live)
    first = slot % len(ring)
    ordered = [ring[(first + i) % len(ring)] for i in range(len(ring))]
    return across_racks(ordered, replication_factor, racks)


def next_leader(live: Sequence[int], current: int, load: Mapping[int, int]) -> int:
    """Leader of a partition's next segment.

    Leadership moves on at every roll (the design spreads load by rotating it): any live
    node but the current leader qualifies, the current one only when it is alone. Among
    those, the least loaded (load = active segments led) wins and ties go to the first
    node after the current leader in node-id order, so equally loaded nodes take turns.
    """
    order = {node: i for i, node in enumerate(ring_after(live, current, len(live)))}
    candidates = [node for node in order if node != current] or list(order)
    return min(candidates, key=lambda node: (load.get(node, 0), order[node]))


def replicas_led_by(
    live: Sequence[int], leader: int, replication_factor: int,
    racks: Mapping[int, str | None] | None = None,
) -> list[int]:
    """The leader first, then the nodes after it on the ring (spread over racks when
    nodes have them)."""
    rest = [n for n in ring_after(live, leader, len(live)) if n != leader]
    return across_racks([leader, *rest], max(1, replication_factor), racks)


def rendezvous_pick(nodes: Sequence[int], key: str) -> int | None:
    """The node with the highest hash of (`key`, node) among `nodes` (rendezvous hashing).

    Group coordinators are placed with it: when a node leaves, only the keys it held
    move (each to its own next-highest node), and every other key stays where it was,
    where a hash modulo the node count would move most of them. blake2b, not Python's
    hash(), so every process computes the same answer."""
    best: int | None = None
    best_score = -1
    prefix = key.encode("utf-8") + b"\0"
    for node in nodes:
        digest = hashlib.blake2b(prefix + node.to_bytes(8, "big", signed=True), digest_size=8).digest()
        score = int.from_bytes(digest, "big")
        if score > best_score or (score == best_score and best is not None and node < best):
            best, best_score = node, score
    return best
