"""Followers fetch the active segment of each partition they replicate from its leader.

One long-polling loop per leader node carries every partition this node follows on
it. A follower asks from its own log end, which is how the leader learns what the
follower holds (and so moves the high watermark), and writes what it gets with the
leader's offsets. The assignments are re-read as soon as an applied metadata entry
moves the topology (Node._on_metadata_applied calls metadata_moved), so a roll or a
new leader redirects the loops at once; a periodic re-read covers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from broker.background import wait_or_timeout
from broker.interbroker.client import PeerUnavailable
from broker.interbroker.peer_api import FetchedPart, FetchPart
from broker.log.errors import LogError
from broker.node_services import NodeServices
from broker.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

MAX_WAIT_MS = 500
PARTITION_MAX_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class Followed:
    topic: str
    partition: int
    epoch: int
    base_offset: int


class ReplicaFetcher:
    def __init__(self, node: NodeServices) -> None:
        self._node = node
        self._refresh_s = node.tuning.follower_refresh_interval_ms / 1000
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._assigned: dict[int, list[Followed]] = {}
        self._task: asyncio.Task[None] | None = None
        # Set when the metadata's topology moved: the assignments are read again.
        self._moved = asyncio.Event()

    def metadata_moved(self) -> None:
        self._moved.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="replica-fetcher")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._loops.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _assignments(self) -> dict[int, list[Followed]]:
        me = self._node.node_id
        out: dict[int, list[Followed]] = {}
        with self._node.metadata() as state:
            for topic in state.topics.values():
                for p in topic.partitions:
                    active = p.active
                    if active.leader != me and me in active.replicas:
                        out.setdefault(active.leader, []).append(
                            Followed(topic.name, p.index, active.epoch, active.base_offset)
                        )
        return out

    async def _supervise(self) -> None:
        while True:
            try:
                self._assigned = self._assignments()
                for leader in list(self._loops):
                    if leader not in self._assigned or self._loops[leader].done():
                        self._loops.pop(leader).cancel()
                for leader in self._assigned:
                    if leader not in self._loops:
                        self._loops[leader] = asyncio.create_task(
                            self._follow(leader), name=f"follow-node-{leader}"
                        )
            except Exception:
                log.exception("replica fetcher supervision failed")
            self._moved.clear()
            await wait_or_timeout(self._moved, self._refresh_s)

    def _superseded(self, leader: int, task: asyncio.Task[None] | None) -> bool:
        """Whether this loop is no longer the one following `leader`. A cancelled loop
        can miss its cancellation (Python 3.11's wait_for returns a result that came in
        at the same moment and drops the cancel): it must end by itself, or two loops
        fetch the same partitions and each one's answers fail to append after the
        other's."""
        return self._loops.get(leader) is not task

    async def _follow(self, leader: int) -> None:
        node = self._node
        assert node.replicas is not None
        me = asyncio.current_task()
        while not self._superseded(leader, me):
            followed = self._assigned.get(leader, [])
            if not followed or node.broker_address(leader) is None:
                await asyncio.sleep(self._refresh_s)
                continue
            parts: list[FetchPart] = []
            for f in followed:
                if node.replicas.is_offline(f.topic, f.partition):
                    continue  # its files could not be opened: nothing to append to
                replica = node.replicas.get_or_open(f.topic, f.partition)
                if replica.sealing_epoch == f.epoch:
                    continue  # this node is sealing it: the old leader's offsets stop here
                try:
                    replica.begin_segment(f.epoch, f.base_offset)
                except LogError as exc:
                    log.warning("%s-%d: cannot follow epoch %d at %d: %s",
                                f.topic, f.partition, f.epoch, f.base_offset, exc)
                    continue
                parts.append(FetchPart(f.topic, f.partition, replica.log_end_offset, PARTITION_MAX_BYTES))
            try:
                answer = await node.peer_api.follower_fetch(leader, parts, max_wait_ms=MAX_WAIT_MS,
                                                            max_bytes=64 << 20)
            except PeerUnavailable as exc:
                log.debug("follower fetch from node %d failed: %s", leader, exc)
                await asyncio.sleep(0.5)
                continue
            if self._superseded(leader, me):
                return
            epochs = {(f.topic, f.partition): f.epoch for f in followed}
            for (topic, partition), part in answer.items():
                self._apply(topic, partition, part, epochs.get((topic, partition)))

    def _apply(self, topic: str, partition: int, p: FetchedPart, epoch: int | None) -> None:
        node = self._node
        assert node.replicas is not None
        replica = node.replicas.get(topic, partition)
        if replica is None or epoch is None or replica.sealing_epoch == epoch:
            return
        if p.error != ErrorCode.NONE:
            log.debug("%s-%d: follower fetch answered %s", topic, partition, p.error.name)
            return
        if not p.records:
            replica.set_follower_high_watermark(p.high_watermark)
            return
        try:
            replica.append_replicated(p.records, epoch, p.high_watermark)
        except LogError as exc:
            log.warning("%s-%d: cannot write replicated batches: %s", topic, partition, exc)
