"""Sealing the active segment of a dead leader, so its partition takes writes again.

When the leader of an active segment is dead (its broker heartbeats stopped) and its
lease has run out, the in-sync follower with the lowest node id proposes
ReassignLeader, sealing the segment at its own log end. Every record acknowledged with
acks=all is on every in-sync replica, so that offset includes all of them; records
past it (acks=1 records that never reached this follower) are cut from the others.
The state machine refuses the change while the leader is alive or leased, so a working
leader is never replaced; it opens the next segment on a live node.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from broker.background import Periodic
from broker.coordination.commands import ReassignLeader
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import SegmentRolled

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5


class Failover(Periodic):
    def __init__(self, node: Node) -> None:
        super().__init__("failover", CHECK_EVERY_S, self.check_once)
        self._node = node

    def _orphaned(self) -> list[tuple[str, int, int]]:
        """(topic, partition, epoch) whose dead leader this node should replace."""
        me = self._node.node_id
        now = time.time_ns() // 1_000_000
        out = []
        with self._node.metadata() as state:
            for topic in state.topics.values():
                for p in topic.partitions:
                    active = p.active
                    if active.leader == me or me not in active.in_sync:
                        continue
                    if state.broker_alive(active.leader, now) or active.lease_expiry_ms > now:
                        continue
                    live_in_sync = [r for r in active.in_sync
                                    if r != active.leader and state.broker_alive(r, now)]
                    if live_in_sync and min(live_in_sync) == me:
                        out.append((topic.name, p.index, active.epoch))
        return out

    async def check_once(self) -> None:
        node = self._node
        assert node.replicas is not None
        for topic, partition, epoch in self._orphaned():
            replica = node.replicas.get(topic, partition)
            if replica is None or replica.log.log.active_epoch != epoch:
                continue
            end = replica.log_end_offset
            try:
                result = await node.propose(ReassignLeader(topic, partition, epoch, end, node.node_id))
            except RaftError as exc:
                log.info("failover of %s-%d failed: %s", topic, partition, exc)
                continue
            if isinstance(result, SegmentRolled):
                log.warning(
                    "%s-%d: leader of epoch %d is dead; sealed it at %d, epoch %d now led by node %d",
                    topic, partition, epoch, end, result.new_epoch, result.new_leader,
                )
