"""Write fencing with leases renewed through Raft.

The lease for a segment is a deadline in the metadata, set by its leader's renewals.
The leader counts a lease from the moment it *sent* the renewal, so its own view of
the deadline is never later than the one the rest of the cluster applied. A node cut
off from the Raft majority cannot renew: it stops writing when its lease runs out,
and the metadata refuses to hand the segment to another node before that deadline
(ReassignLeader checks it). Two nodes therefore never write the same offsets, as long
as clocks between nodes differ by less than SAFETY_MS.

Leases are renewed only for partitions written recently; an idle partition's lease
lapses and the next write takes a new one first (one Raft round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from broker.coordination.commands import RenewLease
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import LeaseGranted

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

LEASE_MS = 6000
RENEW_EVERY_MS = 2000
# Writes stop this long before the lease's deadline: room for clock skew between nodes
# and for a write that started just before the deadline.
SAFETY_MS = 500
# A partition written within this window keeps its lease renewed.
ACTIVE_WINDOW_MS = 2 * LEASE_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LeaseKeeper:
    def __init__(self, node: Node) -> None:
        self._node = node
        # (topic, partition) -> (epoch, local deadline)
        self._held: dict[tuple[str, int], tuple[int, int]] = {}
        self._last_write: dict[tuple[str, int], int] = {}
        self._pending: dict[tuple[str, int, int], asyncio.Future[bool]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop(), name="lease-renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def holds(self, topic: str, partition: int, epoch: int) -> bool:
        held = self._held.get((topic, partition))
        return held is not None and held[0] == epoch and now_ms() < held[1] - SAFETY_MS

    async def acquire(self, topic: str, partition: int, epoch: int) -> bool:
        """True when this node may write the segment of `epoch` now, renewing its lease
        through Raft first if needed."""
        self._last_write[(topic, partition)] = now_ms()
        if self.holds(topic, partition, epoch):
            return True
        key = (topic, partition, epoch)
        pending = self._pending.get(key)
        if pending is None:
            # Concurrent writers to one partition share one renewal.
            pending = asyncio.ensure_future(self._renew(topic, partition, epoch))
            self._pending[key] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _renew(self, topic: str, partition: int, epoch: int) -> bool:
        sent = now_ms()
        try:
            result = await self._node.propose(
                RenewLease(topic, partition, epoch, self._node.node_id, sent + LEASE_MS)
            )
        except RaftError as exc:
            log.info("lease renewal for %s-%d epoch %d failed: %s", topic, partition, epoch, exc)
            return False
        if not isinstance(result, LeaseGranted):
            self._held.pop((topic, partition), None)
            return False
        self._held[(topic, partition)] = (epoch, sent + LEASE_MS)
        return True

    def forget(self, topic: str, partition: int) -> None:
        self._held.pop((topic, partition), None)
        self._last_write.pop((topic, partition), None)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_MS / 1000)
            cutoff = now_ms() - ACTIVE_WINDOW_MS
            due = []
            for (topic, partition), last in list(self._last_write.items()):
                if last < cutoff:
                    self.forget(topic, partition)
                    continue
                held = self._held.get((topic, partition))
                if held is not None:
                    due.append(self._renew(topic, partition, held[0]))
            if due:
                await asyncio.gather(*due, return_exceptions=True)
