"""Rolling a partition's active segment over to the next node.

When the active segment reaches its roll threshold (segment.entries, segment.bytes or
segment.ms), its leader stops appending, and proposes through Raft: seal the segment of
this epoch at the current log end, and open the next one there, led by another live
node. The proposal names the epoch it seals, so a stale or repeated proposal is refused
instead of sealing a later segment (the original Walrus could seal the wrong segment
under concurrent appends); appends stay stopped until the outcome is applied, so no
record lands past the sealed end.

Every node applies the roll: the old leader seals its local segment, the new leader
begins the new epoch in its local log at the sealed end offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from broker.coordination.commands import RollSegment
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import SegmentRolled
from broker.interbroker.client import PeerUnavailable
from broker.node_services import NodeServices
from broker.partitions.replica import PartitionReplica
from broker.partitions.role import Event

log = logging.getLogger(__name__)

FOLLOWER_CATCH_UP_S = 2.0
ROLL_RETRY_S = 0.2
LEARN_TIMEOUT_S = 3.0


def _threshold(config: Mapping[str, str], name: str) -> int:
    try:
        value = int(config.get(name, "-1"))
    except ValueError:
        return -1
    return value


class Rotation:
    def __init__(self, node: NodeServices) -> None:
        self._node = node
        self._tasks: set[asyncio.Task[None]] = set()

    def live_node_count(self) -> int:
        with self._node.metadata() as state:
            return len(state.live_broker_ids(time.time_ns() // 1_000_000))

    def after_append(self, replica: PartitionReplica, epoch: int, segment_base: int) -> None:
        """Start a roll when the active segment has reached a threshold."""
        if replica.rolling_epoch is not None:
            return
        if self.live_node_count() < 2:
            # Alone, the next leader would be this node again: nothing to spread.
            return
        config = self._node.topic_config(replica.topic)
        entries = replica.log_end_offset - segment_base
        max_entries = _threshold(config, "segment.entries")
        max_bytes = _threshold(config, "segment.bytes")
        max_ms = _threshold(config, "segment.ms")
        size = replica.segment_bytes_written
        age_ms = time.monotonic() * 1000 - replica.segment_started_ms
        if (
            (max_entries > 0 and entries >= max_entries)
            or (max_bytes > 0 and size >= max_bytes)
            or (max_ms > 0 and age_ms >= max_ms)
        ):
            if not replica.role.handle(Event.START_ROLL, epoch):
                return  # something else is under way (partitions/role.py)
            task = asyncio.create_task(self._roll(replica, epoch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _roll(self, replica: PartitionReplica, epoch: int) -> None:
        end = replica.log_end_offset
        # Appends are stopped, so this is every producer's state at `end`.
        producers = replica.producer_rows_for_seal()
        # The in-sync followers must hold the whole segment first: the next leader is one
        # of them, and sealing is what releases acks=all answers still waiting for them.
        # A follower that cannot keep up leaves the in-sync set after
        # replica.lag.time.max.ms; until then the segment stays open (the next append
        # tries again), rather than leaving acknowledged records on this node alone.
        caught_up = replica.tracker is None or await replica.wait_for_high_watermark(
            end, FOLLOWER_CATCH_UP_S)
        if not caught_up:
            log.info("roll of %s-%d epoch %d put off: in-sync followers hold up to %d of %d",
                     replica.topic, replica.partition, epoch, replica.high_watermark, end)
            replica.role.handle(Event.ROLL_ENDED, epoch)
            return
        command = RollSegment(replica.topic, replica.partition, epoch, end, producers)
        while True:
            try:
                result = await self._node.propose(command)
            except RaftError as exc:
                # The roll may have been applied even so (the metadata leader failed
                # mid-way): appending now could write past the sealed end. Wait until
                # the metadata tells, proposing again (a repeat is refused harmlessly).
                log.info("roll of %s-%d epoch %d: %s; asking again",
                         replica.topic, replica.partition, epoch, exc)
                await asyncio.sleep(ROLL_RETRY_S)
                if self._active_epoch(replica) != epoch:
                    return  # applied: on_applied has sealed it
                continue
            if isinstance(result, SegmentRolled):
                log.info(
                    "%s-%d: sealed epoch %d at offset %d; epoch %d now led by node %d",
                    replica.topic, replica.partition, epoch, end, result.new_epoch, result.new_leader,
                )
            elif self._active_epoch(replica) == epoch:
                # A definite refusal (no other live node, say): keep writing this segment.
                log.info("roll of %s-%d epoch %d refused: %s", replica.topic, replica.partition, epoch, result)
                replica.role.handle(Event.ROLL_ENDED, epoch)
            return

    def _active_epoch(self, replica: PartitionReplica) -> int | None:
        with self._node.metadata() as state:
            p = state.partition(replica.topic, replica.partition)
            return None if p is None else p.leader_epoch

    def on_applied(self, command: dict[str, Any], result: Any) -> None:
        """Apply a committed roll (or reassignment) to this node's local logs."""
        if not isinstance(result, SegmentRolled):
            return
        node = self._node
        assert node.replicas is not None
        replica = node.replicas.get(result.topic, result.partition)
        if replica is not None and replica.log.log.active_epoch == result.sealed_epoch:
            try:
                if not replica.seal_at(result.sealed_epoch, result.end_offset):
                    log.warning(
                        "%s-%d: this replica holds less of epoch %d than its seal at %d",
                        result.topic, result.partition, result.sealed_epoch, result.end_offset,
                    )
            except Exception:
                log.exception("sealing %s-%d epoch %d", result.topic, result.partition, result.sealed_epoch)
            replica.lead_with_followers(None)
        if replica is not None:
            replica.role.handle(Event.ROLL_ENDED)
        node.leases.forget(result.topic, result.partition)
        if result.new_leader == node.node_id and node.replicas.is_offline(result.topic, result.partition):
            log.error("%s-%d: this node leads epoch %d but the partition is offline here",
                      result.topic, result.partition, result.new_epoch)
        elif result.new_leader == node.node_id:
            mine = node.replicas.get_or_open(result.topic, result.partition)
            mine.begin_segment(result.new_epoch, result.end_offset)
            previous = self._previous_leader(result.topic, result.partition, result.sealed_epoch)
            if previous is not None and previous != node.node_id and not self._replicated(
                result.topic, result.partition, result.sealed_epoch
            ) and not self._producers_in_metadata(result):
                # This node did not follow the sealed segment, and the seal carried no
                # producer state, so it lacks (or has stale) producer sequences: learn
                # them before taking writes.
                if not mine.role.handle(Event.START_LEARNING):
                    log.warning("%s-%d: cannot learn producer state while %s", result.topic,
                                result.partition, mine.role.role.value)
                    return
                task = asyncio.create_task(self._learn_producers(mine, previous, result.end_offset))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _producers_in_metadata(self, result: SegmentRolled) -> bool:
        """Whether the new segment's starting producer state came with the seal (then
        begin_segment has adopted it)."""
        with self._node.metadata() as state:
            return state.producers_at(result.topic, result.partition, result.new_epoch,
                                      result.end_offset) is not None

    def _previous_leader(self, topic: str, partition: int, epoch: int) -> int | None:
        with self._node.metadata() as state:
            p = state.partition(topic, partition)
            for segment in p.segments if p is not None else []:
                if segment.epoch == epoch:
                    return segment.leader
        return None

    def _replicated(self, topic: str, partition: int, epoch: int) -> bool:
        """Whether this node was an in-sync follower of the segment of `epoch`."""
        with self._node.metadata() as state:
            p = state.partition(topic, partition)
            for segment in p.segments if p is not None else []:
                if segment.epoch == epoch:
                    return len(segment.replicas) > 1 and self._node.node_id in segment.in_sync
        return False

    async def _learn_producers(self, replica: PartitionReplica, previous: int, base_offset: int) -> None:
        node = self._node
        try:
            known = await node.peer_api.producers_of(previous, replica.topic, replica.partition,
                                                     timeout=LEARN_TIMEOUT_S)
            replica.adopt_producers(base_offset, [
                (p.producer_id, p.producer_epoch, p.last_sequence, p.last_timestamp) for p in known
            ])
        except PeerUnavailable as exc:
            # The previous leader is gone: forget what this node knew from older
            # segments, so producers' sequences are accepted where they stand.
            log.warning("%s-%d: producer state not learnt from node %d (%s); starting afresh",
                        replica.topic, replica.partition, previous, exc)
            replica.adopt_producers(base_offset, [])
        finally:
            replica.role.handle(Event.LEARNED)
