"""The leader keeps the metadata's in-sync set of each segment it leads up to date:
followers that fall behind for replica.lag.time.max.ms leave it, followers that reach
the high watermark rejoin. Changes go through Raft, so every node (and a failover)
sees the same set."""

from __future__ import annotations

import logging
import time

from broker.background import Periodic
from broker.coordination.commands import UpdateIsr
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import IsrUpdated
from broker.node_services import NodeServices

log = logging.getLogger(__name__)


class IsrMaintainer(Periodic):
    def __init__(self, node: NodeServices) -> None:
        super().__init__("in-sync set maintenance", node.tuning.in_sync_check_interval_ms / 1000,
                         self.check_once)
        self._node = node

    async def check_once(self) -> None:
        node = self._node
        assert node.replicas is not None
        now = time.monotonic() * 1000
        for replica in node.replicas.replicas():
            tracker = replica.tracker
            if tracker is None:
                continue
            wanted = tracker.wanted_in_sync(replica.log_end_offset, replica.high_watermark, now)
            # A follower on a broker the cluster counts dead leaves at once, as Kafka's
            # controller drops a fenced broker from every in-sync set: the lag rule's
            # clock restarts with each new tracker (a leader restart), so a leader that
            # restarts often would otherwise wait on a dead follower for as long.
            wanted -= self._dead(wanted - {node.node_id})
            # Members the metadata lists but this tracker does not (an addition applied
            # although its proposal reported a failure) must hold what is acknowledged too.
            listed = self._listed_in_sync(replica.topic, replica.partition, replica.tracker_epoch)
            if wanted == tracker.in_sync:
                tracker.joining = listed - tracker.in_sync
                continue
            tracker.joining = (wanted | listed) - tracker.in_sync
            try:
                result = await node.propose(UpdateIsr(
                    replica.topic, replica.partition, replica.tracker_epoch, node.node_id, sorted(wanted)))
            except RaftError as exc:
                log.info("in-sync set change for %s-%d failed: %s", replica.topic, replica.partition, exc)
                continue
            if isinstance(result, IsrUpdated) and replica.tracker is tracker:
                log.info("%s-%d: in-sync replicas now %s", replica.topic, replica.partition, list(result.isr))
                tracker.in_sync = set(result.isr)
                tracker.joining = set()
                replica.refresh_high_watermark()

    def _dead(self, nodes: set[int]) -> set[int]:
        now_ms = time.time_ns() // 1_000_000
        with self._node.metadata() as state:
            return {n for n in nodes if not state.broker_alive(n, now_ms)}

    def _listed_in_sync(self, topic: str, partition: int, epoch: int) -> set[int]:
        with self._node.metadata() as state:
            active = state.active_segment(topic, partition)
            return set(active.in_sync) if active is not None and active.epoch == epoch else set()
