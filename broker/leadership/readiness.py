"""Bringing this node's replicas in line with the leadership the metadata gives it.

`roles.leader_steps` decides; this module carries the steps out. It does so as soon as
the metadata changes who leads what (after each applied entry that moved the topology,
and once at start-up), so the node is ready before the first request for a partition
it now leads. A write may still find a step due (it raced the apply) and takes it
itself; a read never does: it is answered "not leader" until the node is ready, since
a replica not yet ready may hold a tail past the previous seal that no follower has and
that its first step cuts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from broker.coordination.model import Segment
from broker.coordination.state import ClusterState
from broker.leadership.roles import (
    ActiveSegment,
    BeginSegment,
    ChangeFollowers,
    LeadAlone,
    LocalLeadership,
    Step,
    TrackFollowers,
    leader_steps,
)
from broker.partitions.in_sync import InSyncTracker
from broker.partitions.manager import ReplicaManager
from broker.partitions.replica import PartitionReplica

log = logging.getLogger(__name__)


def active_view(segment: Segment) -> ActiveSegment:
    return ActiveSegment(segment.epoch, segment.base_offset, segment.leader,
                         tuple(segment.replicas), tuple(segment.in_sync))


def local_view(replica: PartitionReplica) -> LocalLeadership:
    tracker = replica.tracker
    if tracker is None:
        return LocalLeadership(replica.log.log.active_epoch, None)
    return LocalLeadership(replica.log.log.active_epoch, replica.tracker_epoch, tuple(tracker.replicas))


def steps_due(me: int, active: ActiveSegment, replica: PartitionReplica) -> tuple[Step, ...]:
    return leader_steps(me, active, local_view(replica))


def carry_out(me: int, replica: PartitionReplica, steps: tuple[Step, ...], lag_ms: int) -> None:
    now_ms = time.monotonic() * 1000
    for step in steps:
        if isinstance(step, BeginSegment):
            replica.begin_segment(step.epoch, step.base_offset)
        elif isinstance(step, TrackFollowers):
            replica.tracker_epoch = step.epoch
            replica.lead_with_followers(InSyncTracker(
                me, list(step.replicas), list(step.in_sync), now_ms, lag_ms))
        elif isinstance(step, ChangeFollowers):
            assert replica.tracker is not None
            replica.tracker.set_replicas(list(step.replicas), now_ms)
            replica.refresh_high_watermark()
        elif isinstance(step, LeadAlone):
            replica.lead_with_followers(None)


def make_ready(me: int, replica: PartitionReplica, active: ActiveSegment, lag_ms: int) -> PartitionReplica:
    """`replica`, with every step due to lead `active` taken."""
    carry_out(me, replica, steps_due(me, active, replica), lag_ms)
    return replica


class LeadershipReadiness:
    """Takes the steps due for every partition this node leads, whenever the metadata's
    topology moved since it last looked."""

    def __init__(self, me: int, metadata: Callable[[], AbstractContextManager[ClusterState]],
                 replicas: Callable[[], ReplicaManager | None], lag_ms: int) -> None:
        self._me = me
        self._metadata = metadata
        self._replicas = replicas
        self._lag_ms = lag_ms
        self._seen_topology = -1

    def catch_up(self, *, look_anyway: bool = False, only: tuple[str, int] | None = None) -> int:
        """Take what is due if the topology moved (or `look_anyway`); how many
        partitions needed a step. `only`: the applied entry concerned this partition
        alone (a roll, an in-sync change), so the others need no look: with thousands
        of partitions a sweep of all of them after every such entry is real work."""
        manager = self._replicas()
        if manager is None:
            return 0
        led: list[tuple[str, int, ActiveSegment]] = []
        with self._metadata() as state:
            version = state.topology_version
            if version == self._seen_topology and not look_anyway:
                return 0
            if only is not None:
                # Seen, if this entry's is the only move since the last look; otherwise
                # other partitions moved too, and the next full look takes them.
                if version == self._seen_topology + 1:
                    self._seen_topology = version
                found_one = state.partition(*only)
                if found_one is not None and found_one.active.leader == self._me:
                    led.append((only[0], only[1], active_view(found_one.active)))
            else:
                self._seen_topology = version
                for found in state.topics.values():
                    for p in found.partitions:
                        if p.active.leader == self._me:
                            led.append((found.name, p.index, active_view(p.active)))
        changed = 0
        for topic, index, active in led:
            if manager.is_offline(topic, index):
                continue
            try:
                replica = manager.get_or_open(topic, index)
                steps = steps_due(self._me, active, replica)
                if steps:
                    carry_out(self._me, replica, steps, self._lag_ms)
                    changed += 1
            except Exception:
                # One partition that cannot be made ready must not keep the others
                # waiting; a write to it tries again, and its error is the answer.
                log.exception("%s-%d: cannot take up leadership of epoch %d", topic, index, active.epoch)
        return changed
