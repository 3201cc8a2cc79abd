"""Sealing the active segment of a dead leader, so its partition takes writes again.

When the leader of an active segment is dead (its node lease, renewed by every
heartbeat, and any segment lease have run out: ClusterState.leader_replaceable), the
in-sync follower with the lowest node id proposes
ReassignLeader, sealing the segment at its own log end. Every record acknowledged with
acks=all is on every in-sync replica, so that offset includes all of them. It first
takes from the other live in-sync followers whatever they hold past its own end, so
the seal is at the longest surviving copy: the high watermark the dead leader had
answered with may be ahead of what this follower reported (a follower restarted since),
and nothing any survivor holds is cut. Records past the seal (acks=1 records that
reached no survivor) are cut from the others.
The state machine refuses the change while the leader is alive or leased, so a working
leader is never replaced; it opens the next segment on a live node.
"""

from __future__ import annotations

import logging
import time

from broker.background import WokenOrDue
from broker.coordination.applied_view import SNAPSHOT_KIND, MetadataDelta
from broker.coordination.commands import ReassignLeader
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import SegmentRolled
from broker.coordination.state import ClusterState
from broker.interbroker.client import PeerUnavailable
from broker.interbroker.peer_api import FetchPart
from broker.log.errors import LogError
from broker.node_services import NodeServices
from broker.partitions.replica import PartitionReplica
from broker.partitions.role import Event
from broker.protocol.errors import ErrorCode
from broker.replication.failover_choice import (
    RaftLeaderWatch,
    TakeOver,
    next_judgement_ms,
    nodes_at,
    segments_to_take_over,
)

log = logging.getLogger(__name__)

PEER_TIMEOUT_S = 2.0
PEER_FETCH_BYTES = 8 << 20
# Enough rounds of PEER_FETCH_BYTES for any tail a follower can lag by in practice.
MAX_FETCH_ROUNDS = 16


# How long the failover waits at most between two looks when nothing wakes it: a safety
# net. It is woken by every entry that moves the topology, by a Raft leader change, and at
# the time the next lease or liveness runs out (failover_choice.next_judgement_ms).
LONGEST_WAIT_S = 1.0
WAKING_KINDS = frozenset({"register_broker", "unregister_broker", SNAPSHOT_KIND})


class Failover(WokenOrDue):
    def __init__(self, node: NodeServices) -> None:
        super().__init__("failover", self.check_once, LONGEST_WAIT_S)
        self._node = node
        # Two heartbeat intervals of entries flowing under one Raft leader before any
        # lease is judged; with node leases every node beats that often, so a gap of two
        # intervals between entries is a stall.
        beat_s = node.tuning.broker_heartbeat_interval_ms / 1000
        self._raft_leader = RaftLeaderWatch(
            2 * beat_s, 2 * beat_s if node.tuning.node_leases else None)
        # Replicas this node stopped following from their old leader while it seals
        # their segment (topic, partition, epoch).
        self._frozen: dict[tuple[str, int, int], PartitionReplica] = {}

    def follow(self) -> None:
        """Be woken by what can make a segment this node's to take over."""
        node = self._node
        assert node.raft is not None
        node.view.subscribe(self._on_delta)
        node.raft.watch_leader(self.wake)

    def _on_delta(self, delta: MetadataDelta) -> None:
        # A heartbeat or a renewal only postpones a takeover; these can make one due now
        # (a new segment led by a dead node, a changed in-sync set) or end a freeze. The
        # first entry after a stall starts the settle wait, which the next look sleeps out.
        stall_ended = self._raft_leader.entry_applied(time.monotonic())
        if stall_ended or delta.topology_moved or delta.kind in WAKING_KINDS:
            self.wake()

    def _orphaned(self) -> tuple[list[TakeOver], float | None]:
        """The dead leaders' segments this node should take over now, and how long until
        the answer may change by time alone (None: not by time)."""
        raft = self._node.raft
        leader = raft.leader if raft is not None else None
        term = raft.term if raft is not None else 0
        now_s = time.monotonic()
        now_ms = time.time_ns() // 1_000_000
        watch = self._raft_leader
        if not watch.settled(leader, term, now_s):
            if leader is None:
                return [], None  # woken when one is elected
            # Only the lost Raft leader's segments, until the others had a beat to renew.
            with self._node.metadata() as state:
                due = segments_to_take_over(self._node.node_id, state, now_ms,
                                            only_leaders=nodes_at(state, watch.lost))
                upcoming = next_judgement_ms(self._node.node_id, state, now_ms)
            settles_in = watch.settles_in_s(now_s)
            return due, settles_in if upcoming is None else min(settles_in, (upcoming - now_ms) / 1000)
        with self._node.metadata() as state:
            due = segments_to_take_over(self._node.node_id, state, now_ms)
            upcoming = next_judgement_ms(self._node.node_id, state, now_ms)
        return due, None if upcoming is None else (upcoming - now_ms) / 1000

    def lapses_judged(self, state: ClusterState) -> frozenset[int] | None:
        """Whose lapsed node leases say now that the node is gone: None for every node's
        (the metadata has flowed under one Raft leader for the settle time), else only
        the lost Raft leaders' (in an election or a stall every lease may lapse, and a
        live node needs a beat to renew). What Metadata tells clients follows this."""
        raft = self._node.raft
        if raft is None:
            return None
        watch = self._raft_leader
        if watch.settled(raft.leader, raft.term, time.monotonic()):
            return None
        return nodes_at(state, watch.lost)

    async def check_once(self) -> float | None:
        """Take over what is due; returns how long until the next look is due."""
        node = self._node
        assert node.replicas is not None
        # A partition frozen for a failover whose outcome was unknown, and no longer to
        # be taken over (its leader renewed its lease, or a seal was applied): follow it
        # again.
        for key in [k for k in self._frozen if not self._still_to_seal(*k)]:
            self._thaw(*key)
        due, wait_s = self._orphaned()
        for chosen in due:
            topic, partition, epoch, others = chosen.topic, chosen.partition, chosen.epoch, chosen.others
            replica = node.replicas.get(topic, partition)
            if replica is None or replica.log.log.active_epoch != epoch:
                continue
            # From here on this replica takes nothing more from the old leader, which may
            # still be alive (a lapsed lease, not a death): what it fetched after the
            # seal offset below was chosen would be cut by the seal, and the old leader
            # would have counted it towards an acks=all answer.
            if not self._freeze(replica, epoch):
                continue
            for other in others:
                await self._take_tail_from(other, replica, epoch)
            if replica.log.log.active_epoch != epoch:
                self._thaw(topic, partition, epoch)
                continue
            end = replica.log_end_offset
            # This replica's producer state at `end`: complete, since it started the
            # segment from the state the metadata gave and holds every batch up to `end`.
            producers = replica.producer_rows_for_seal()
            try:
                result = await node.propose(
                    ReassignLeader(topic, partition, epoch, end, node.node_id, producers))
            except RaftError as exc:
                # It may still be applied: stay frozen until the metadata says.
                log.info("failover of %s-%d failed: %s", topic, partition, exc)
                continue
            self._thaw(topic, partition, epoch)
            if isinstance(result, SegmentRolled):
                log.warning(
                    "%s-%d: leader of epoch %d is dead; sealed it at %d, epoch %d now led by node %d",
                    topic, partition, epoch, end, result.new_epoch, result.new_leader,
                )
        if self._frozen or due:
            # A seal whose outcome was unknown, or one due but not made (the replica was
            # busy rolling, a proposal failed): look again soon, whatever happens.
            interval = self._node.tuning.failover_check_interval_ms / 1000
            wait_s = interval if wait_s is None else min(wait_s, interval)
        return wait_s

    def _still_to_seal(self, topic: str, partition: int, epoch: int) -> bool:
        now = time.time_ns() // 1_000_000
        with self._node.metadata() as state:
            active = state.active_segment(topic, partition)
            return active is not None and active.epoch == epoch and state.leader_replaceable(active, now)

    def _freeze(self, replica: PartitionReplica, epoch: int) -> bool:
        if not replica.role.handle(Event.START_SEALING, epoch) and replica.sealing_epoch != epoch:
            return False  # something else is under way (partitions/role.py)
        self._frozen[(replica.topic, replica.partition, epoch)] = replica
        return True

    def _thaw(self, topic: str, partition: int, epoch: int) -> None:
        replica = self._frozen.pop((topic, partition, epoch), None)
        if replica is not None:
            replica.role.handle(Event.SEAL_ENDED, epoch)

    async def _take_tail_from(self, other: int, replica: PartitionReplica, epoch: int) -> None:
        """Append what follower `other` holds of the segment of `epoch` past this
        replica's log end (both copied it from the same leader, batch for batch)."""
        node = self._node
        if node.broker_address(other) is None:
            return
        for _ in range(MAX_FETCH_ROUNDS):
            wanted = FetchPart(replica.topic, replica.partition, replica.log_end_offset, PEER_FETCH_BYTES)
            try:
                part = await node.peer_api.fetch_tail(other, wanted, timeout=PEER_TIMEOUT_S)
            except PeerUnavailable as exc:
                log.info("%s-%d: no tail from node %d before the failover: %s",
                         replica.topic, replica.partition, other, exc)
                return
            if part is None or part.error != ErrorCode.NONE or not part.records:
                return
            if replica.log.log.active_epoch != epoch:
                return
            before = replica.log_end_offset
            try:
                replica.append_replicated(part.records, epoch, part.high_watermark)
            except LogError as exc:
                log.warning("%s-%d: cannot take the tail node %d holds: %s",
                            replica.topic, replica.partition, other, exc)
                return
            if replica.log_end_offset == before:
                return
            log.warning("%s-%d: took offsets %d-%d of epoch %d from node %d before sealing",
                        replica.topic, replica.partition, before, replica.log_end_offset - 1,
                        epoch, other)
