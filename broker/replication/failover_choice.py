"""Which dead leaders' segments this node takes over: the failover's decision, as pure
functions of the applied metadata and an injected clock (replication/failover.py acts
on them).

A segment is taken over when its leader may be replaced (ClusterState.leader_replaceable:
its segment lease and its node lease have run out, or it is dead by its session
timeout), by the live in-sync follower with the lowest node id, so exactly one node
proposes. Nothing is judged right after a Raft leader change: while there is no leader
nothing commits, so every node's lease may lapse in an election, and live nodes need a
beat to renew theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.coordination.state import ClusterState


@dataclass(frozen=True, slots=True)
class TakeOver:
    topic: str
    partition: int
    epoch: int
    # The other live in-sync followers: the seal takes what they hold past this node's end.
    others: tuple[int, ...]


def segments_to_take_over(me: int, state: ClusterState, now_ms: int) -> list[TakeOver]:
    out: list[TakeOver] = []
    for topic in state.topics.values():
        for p in topic.partitions:
            active = p.active
            if active.leader == me or me not in active.in_sync:
                continue
            if not state.leader_replaceable(active, now_ms):
                continue
            live_in_sync = [r for r in active.in_sync
                            if r != active.leader and state.broker_alive(r, now_ms)]
            if live_in_sync and min(live_in_sync) == me:
                out.append(TakeOver(topic.name, p.index, active.epoch,
                                    tuple(r for r in live_in_sync if r != me)))
    return out


class RaftLeaderWatch:
    """Whether the Raft leader has been the same for `settle_s` (monotonic seconds)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._leader: str | None = None
        self._since = 0.0

    def settled(self, leader: str | None, now_s: float) -> bool:
        if leader != self._leader:
            self._leader, self._since = leader, now_s
        return leader is not None and now_s - self._since >= self.settle_s
