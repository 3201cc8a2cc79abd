"""Write fencing with leases renewed through Raft.

Two kinds of lease fence a segment's leader, and either lets it write:
- the node lease (ClusterTuning.node_leases, on by default): every broker
  heartbeat (coordination/liveness.py) asks for one, so one Raft entry per node and
  heartbeat covers every segment the node leads, written or idle. It is what lets a dead leader be replaced within a lease_ms: a live node
  renews it several times per lease, so a lapsed node lease means a dead or cut-off
  node, not an idle partition;
- a segment lease (RenewLease), taken by a write when no node lease holds (node leases
  off, just after start, or while heartbeats fail) and renewed for partitions written
  recently.

A lease is a deadline in the metadata, set by its leader's renewals.
The leader counts a lease from the moment it *sent* the renewal, so its own view of
the deadline is never later than the one the rest of the cluster applied. A node cut
off from the Raft majority cannot renew: it stops writing when its lease runs out,
and the metadata refuses to hand the segment to another node before that deadline
(ReassignLeader checks it). Two nodes therefore never write the same offsets, as long
as clocks between nodes differ by less than the safety margin
(ClusterTuning.lease_safety_margin_ms).

The deadline in the metadata is wall-clock time, the only time every node shares. The
leader's own deadline is kept on its monotonic clock: a wall clock stepped back (NTP)
must not let it write past the moment the others count the lease over.

Segment leases are renewed only for partitions written recently and while the node
lease has lapsed; an idle partition's lease lapses and the next write takes a new one
first (one Raft round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from broker.cluster_tuning import ClusterTuning
from broker.coordination.commands import RenewLease
from broker.coordination.raft_errors import RaftError
from broker.coordination.results import LeaseGranted

log = logging.getLogger(__name__)

Propose = Callable[[Any], Awaitable[Any]]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class LeaseKeeper:
    def __init__(self, propose: Propose, node_id: int, tuning: ClusterTuning, *,
                 wall: Callable[[], int] = wall_ms, monotonic: Callable[[], int] = monotonic_ms) -> None:
        self._propose = propose
        self._node_id = node_id
        self._tuning = tuning
        self._wall = wall
        self._monotonic = monotonic
        # (topic, partition) -> (epoch, deadline on the monotonic clock)
        self._held: dict[tuple[str, int], tuple[int, int]] = {}
        # (topic, partition) -> when last written, monotonic
        self._last_write: dict[tuple[str, int], int] = {}
        self._pending: dict[tuple[str, int, int], asyncio.Future[bool]] = {}
        self._task: asyncio.Task[None] | None = None
        # The node lease its heartbeats were last granted, on the monotonic clock.
        self._node_deadline = 0

    def node_lease_granted(self, deadline_monotonic_ms: int) -> None:
        """A heartbeat carrying a node lease was applied: every segment this node
        leads is leased until `deadline_monotonic_ms`."""
        self._node_deadline = max(self._node_deadline, deadline_monotonic_ms)

    def holds_node_lease(self) -> bool:
        return self._monotonic() < self._node_deadline - self._tuning.lease_safety_margin_ms

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop(), name="lease-renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def holds(self, topic: str, partition: int, epoch: int) -> bool:
        """Whether this node may write the segment of `epoch` now, given that the
        applied metadata says it leads it: its node lease runs, or a lease of the
        segment's own does. No other node can take a segment over while either runs."""
        if self.holds_node_lease():
            return True
        held = self._held.get((topic, partition))
        return (held is not None and held[0] == epoch
                and self._monotonic() < held[1] - self._tuning.lease_safety_margin_ms)

    async def acquire(self, topic: str, partition: int, epoch: int) -> bool:
        """True when this node may write the segment of `epoch` now, renewing its lease
        through Raft first if needed."""
        self._last_write[(topic, partition)] = self._monotonic()
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
        # Both clocks are read before the proposal leaves: the lease counts from then on
        # either clock, so this node's deadline is never later than the metadata's.
        sent_mono, sent_wall = self._monotonic(), self._wall()
        lease = self._tuning.lease_ms
        try:
            result = await self._propose(RenewLease(topic, partition, epoch, self._node_id, sent_wall + lease))
        except RaftError as exc:
            log.info("lease renewal for %s-%d epoch %d failed: %s", topic, partition, epoch, exc)
            return False
        if not isinstance(result, LeaseGranted):
            self._held.pop((topic, partition), None)
            return False
        self._held[(topic, partition)] = (epoch, sent_mono + lease)
        return True

    def forget(self, topic: str, partition: int) -> None:
        self._held.pop((topic, partition), None)
        self._last_write.pop((topic, partition), None)

    async def renew_due(self) -> None:
        """One round of the renewal loop: renew every lease held for a partition written
        within the active window, and forget partitions idle for longer."""
        cutoff = self._monotonic() - self._tuning.active_window_ms
        node_leased = self.holds_node_lease()
        due = []
        for (topic, partition), last in list(self._last_write.items()):
            if last < cutoff:
                self.forget(topic, partition)
                continue
            held = self._held.get((topic, partition))
            # While the node lease runs it covers every segment: renewing each one
            # too would cost a Raft entry per partition for nothing.
            if held is not None and not node_leased:
                due.append(self._renew(topic, partition, held[0]))
        if due:
            await asyncio.gather(*due, return_exceptions=True)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tuning.lease_renew_interval_ms / 1000)
            await self.renew_due()
