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


def segments_to_take_over(me: int, state: ClusterState, now_ms: int,
                          only_leaders: frozenset[int] | None = None) -> list[TakeOver]:
    """`only_leaders`: judge only segments these nodes lead (None: every segment)."""
    out: list[TakeOver] = []
    for topic in state.topics.values():
        for p in topic.partitions:
            active = p.active
            if active.leader == me or me not in active.in_sync:
                continue
            if only_leaders is not None and active.leader not in only_leaders:
                continue
            if not state.leader_replaceable(active, now_ms):
                continue
            live_in_sync = [r for r in active.in_sync
                            if r != active.leader and state.broker_alive(r, now_ms)]
            if live_in_sync and min(live_in_sync) == me:
                out.append(TakeOver(topic.name, p.index, active.epoch,
                                    tuple(r for r in live_in_sync if r != me)))
    return out


def next_judgement_ms(me: int, state: ClusterState, now_ms: int) -> int | None:
    """The earliest time after now_ms at which segments_to_take_over may answer
    differently, with no entry applied in between: a segment lease, a leader's node lease
    or its liveness running out, or an in-sync follower below `me` dying (this node then
    chooses). None: no segment this node follows in sync can become its to take over
    by time alone. An entry applied meanwhile can only postpone these times (a heartbeat,
    a renewal) or moves the topology, which the failover hears of."""
    timeout = state.session_timeout_ms()
    soonest: int | None = None

    def consider(at: int) -> None:
        nonlocal soonest
        if at > now_ms and (soonest is None or at < soonest):
            soonest = at

    def death_ms(node_id: int) -> int | None:
        broker = state.brokers.get(node_id)
        if broker is None:
            return None
        own = broker.session_timeout_ms if broker.session_timeout_ms is not None else timeout
        return broker.last_heartbeat_ms + own

    for topic in state.topics.values():
        for p in topic.partitions:
            active = p.active
            if active.leader == me or me not in active.in_sync:
                continue
            consider(active.lease_expiry_ms)
            leader = state.brokers.get(active.leader)
            if leader is not None:
                if leader.lease_expiry_ms > 0:
                    consider(leader.lease_expiry_ms)
                elif (dies := death_ms(leader.node_id)) is not None:
                    consider(dies)
            for other in active.in_sync:
                if other < me and other != active.leader and (dies := death_ms(other)) is not None:
                    consider(dies)
    return soonest


def nodes_at(state: ClusterState, raft_addresses: frozenset[str]) -> frozenset[int]:
    """The brokers registered with these Raft addresses."""
    return frozenset(b.node_id for b in state.brokers.values() if b.raft_address in raft_addresses)


class RaftLeaderWatch:
    """Whether the Raft leader has been the same for `settle_s` (monotonic seconds), and
    which leaders were lost since it last was (an election can pass through a leader
    that lasts a moment before the one that stays).

    A lost leader is the exception to the settling: it did not lose its lease to the
    election, it is what the election was about (killed, cut off, or stalled past the
    election timeout). Its segments are judged as soon as there is a leader to propose
    to, which saves the settling on the most common slow failover, a kill of the node that
    led both Raft and segments. Judging it early is safe: its lease has still run out (a
    live one stops writing before then); at worst a stalled node loses leadership it
    would have kept."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._leader: str | None = None
        self._since = 0.0
        self.lost: frozenset[str] = frozenset()

    def settled(self, leader: str | None, now_s: float) -> bool:
        if leader != self._leader:
            if self._leader is not None:
                self.lost |= {self._leader}
            self._leader, self._since = leader, now_s
        done = leader is not None and now_s - self._since >= self.settle_s
        if done:
            self.lost = frozenset()
        return done

    def settles_in_s(self, now_s: float) -> float:
        """How long until the current leader has been the leader for settle_s."""
        return max(0.0, self._since + self.settle_s - now_s)
