"""Which dead leaders' segments this node takes over: the failover's decision, as pure
functions of the applied metadata and an injected clock (replication/failover.py acts
on them).

A segment is taken over when its leader may be replaced (ClusterState.leader_replaceable:
its segment lease and its node lease have run out, or it is dead by its session
timeout), by the live in-sync follower with the lowest node id, so exactly one node
proposes. Nothing is judged right after a Raft election or a stall in the metadata:
while nothing commits, every node's lease may lapse, and live nodes need a beat to
renew theirs (RaftLeaderWatch).
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
    """Whether the metadata has flowed under one Raft leader for `settle_s` (monotonic
    seconds), and which leaders were lost since it last did (an election can pass
    through a leader that lasts a moment before the one that stays).

    A leader is one Raft term: an election that ends with the same leader (it stalled
    past a follower's election timeout, then won again) starts the wait again, and so
    does a gap of more than `stall_s` between two entries reaching this node. While no
    entry commits, no node can renew its lease, whatever the reason: a Raft leader
    stalled short of an election, or this node's own event loop stalled and just now
    catching up. A lapse seen then says nothing about the lapsed node; after settle_s
    of flowing entries, every live node had beats to renew.

    A lost leader is the exception to the settling: it did not lose its lease to the
    election, it is what the election was about (killed, cut off, or stalled past the
    election timeout). Its segments are judged as soon as there is a leader to propose
    to, which saves the settling on the most common slow failover, a kill of the node that
    led both Raft and segments. Judging it early is safe: its lease has still run out (a
    live one stops writing before then); at worst a stalled node loses leadership it
    would have kept. A leader that wins the next term again was not lost."""

    def __init__(self, settle_s: float, stall_s: float | None = None) -> None:
        self.settle_s = settle_s
        # None: entries are not expected at any rate (heartbeats without node leases
        # are seconds apart), so only leader changes unsettle.
        self.stall_s = stall_s
        self._leader: tuple[str | None, int] = (None, -1)
        self._since = 0.0
        self._last_entry: float | None = None
        self.lost: frozenset[str] = frozenset()

    def entry_applied(self, now_s: float) -> bool:
        """An entry reached this node's metadata; True when it ends a stall (the wait
        starts again from now)."""
        last, self._last_entry = self._last_entry, now_s
        if self.stall_s is not None and last is not None and now_s - last > self.stall_s:
            self._since = max(self._since, now_s)
            return True
        return False

    def settled(self, leader: str | None, term: int, now_s: float) -> bool:
        if (leader, term) != self._leader:
            previous = self._leader[0]
            if previous is not None and previous != leader:
                self.lost |= {previous}
            if leader is not None:
                self.lost -= {leader}
            self._leader, self._since = (leader, term), now_s
        done = (leader is not None and now_s - self._since >= self.settle_s
                and not self.stalled(now_s))
        if done:
            self.lost = frozenset()
        return done

    def stalled(self, now_s: float) -> bool:
        """No entry has reached this node for more than stall_s."""
        return (self.stall_s is not None and self._last_entry is not None
                and now_s - self._last_entry > self.stall_s)

    def settles_in_s(self, now_s: float) -> float:
        """How long until the metadata has flowed under the current leader for settle_s
        (at least the stall time while nothing flows: an entry arriving wakes the
        failover sooner)."""
        if self.stalled(now_s):
            assert self.stall_s is not None
            return self.stall_s
        return max(0.0, self._since + self.settle_s - now_s)
