"""Deterministic choice of leaders and replica sets. Pure functions of sorted node ids,
so every node that applies the same command picks the same nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def ring_after(nodes: Sequence[int], start: int, count: int) -> list[int]:
    """`count` nodes of the sorted ring, beginning with the first node after `start`
    (which need not be on the ring); `start` itself, if present, comes last."""
    ring = sorted(nodes)
    later = [n for n in ring if n > start]
    ordered = later + [n for n in ring if n <= start]
    return ordered[:count]


def round_robin_replicas(live: Sequence[int], slot: int, replication_factor: int) -> list[int]:
    """Replica set for the partition placed at `slot` of a cluster-wide placement cursor:
    the leader is live[slot mod n], followers the next nodes of the ring."""
    ring = sorted(live)
    first = slot % len(ring)
    return [ring[(first + i) % len(ring)] for i in range(replication_factor)]


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


def replicas_led_by(live: Sequence[int], leader: int, replication_factor: int) -> list[int]:
    """The leader first, then the nodes after it on the ring."""
    rest = [n for n in ring_after(live, leader, len(live)) if n != leader]
    return [leader, *rest][: max(1, replication_factor)]
