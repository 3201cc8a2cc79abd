"""The leader keeps the metadata's in-sync set of each segment it leads up to date:
followers that fall behind for replica.lag.time.max.ms leave it, followers that reach
the high watermark rejoin. Changes go through Raft, so every node (and a failover)
sees the same set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from broker.coordination.commands import UpdateIsr
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import IsrUpdated

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25


class IsrMaintainer:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="isr-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                await self.check_once()
            except Exception:
                log.exception("in-sync set maintenance failed")

    async def check_once(self) -> None:
        node = self._node
        assert node.replicas is not None
        now = time.monotonic() * 1000
        for replica in node.replicas.replicas():
            tracker = replica.tracker
            if tracker is None:
                continue
            wanted = tracker.wanted_in_sync(replica.log_end_offset, replica.high_watermark, now)
            if wanted == tracker.in_sync:
                continue
            try:
                result = await node.propose(UpdateIsr(
                    replica.topic, replica.partition, replica.tracker_epoch, node.node_id, sorted(wanted)))
            except RaftError as exc:
                log.info("in-sync set change for %s-%d failed: %s", replica.topic, replica.partition, exc)
                continue
            if isinstance(result, IsrUpdated) and replica.tracker is tracker:
                log.info("%s-%d: in-sync replicas now %s", replica.topic, replica.partition, list(result.isr))
                tracker.in_sync = set(result.isr)
                replica.refresh_high_watermark()
