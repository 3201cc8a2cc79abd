"""Keeps this broker registered and alive in the cluster metadata.

A broker is alive while its last heartbeat, as applied through Raft, is younger than
its session timeout: the one it registered with, or the cluster's
``broker.session.timeout.ms``. This task registers the broker, then heartbeats at the
interval given (ClusterTuning.broker_heartbeat_interval_ms), or else at a third of that
timeout, so two lost heartbeats in a row still leave it alive. Each beat also renews
the node lease (leadership/leases.py), which is what failover waits out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .commands import BrokerHeartbeat, RegisterBroker, UnregisterBroker
from .errors import MetadataError, Refusal
from .raft import MetadataRaft
from .raft_errors import RaftError
from .results import Applied, BrokerRegistered

log = logging.getLogger(__name__)


class BrokerHeartbeats:
    """With `lease_ms`, every beat also asks for a node lease until its send time plus
    lease_ms (wall clock), and `on_lease` hears the monotonic deadline of each one
    granted: the write fencing of every segment this broker leads
    (leadership/leases.py)."""

    def __init__(
        self, raft: MetadataRaft, registration: RegisterBroker, interval_s: float | None = None,
        *, lease_ms: int | None = None, on_lease: Callable[[int], None] | None = None,
    ) -> None:
        self.raft = raft
        self.registration = registration
        self._interval_s = interval_s
        self._lease_ms = lease_ms
        self._on_lease = on_lease
        self._task: asyncio.Task[None] | None = None
        self.broker_epoch: int | None = None

    def interval_s(self) -> float:
        if self._interval_s is not None:
            return self._interval_s
        if self.registration.session_timeout_ms is not None:
            return self.registration.session_timeout_ms / 3000
        with self.raft.reading() as state:
            return state.session_timeout_ms() / 3000

    async def start(self, timeout: float = 30.0) -> BrokerRegistered:
        """Register (waiting for the metadata group to be ready, and through any
        election under way), then heartbeat in the background until stop()."""
        await self.raft.wait_ready(timeout)
        registered = await self._register(timeout)
        if self._lease_ms is not None:
            # The node lease from the start, before this node is handed a segment.
            with contextlib.suppress(RaftError):
                await self.beat()
        self._task = asyncio.create_task(self._run(), name="broker-heartbeats")
        return registered

    async def _register(self, timeout: float | None = None) -> BrokerRegistered:
        result = await (self.raft.propose(self.registration) if timeout is None
                        else self.raft.propose_until_applied(self.registration, timeout))
        if not isinstance(result, BrokerRegistered):
            raise RuntimeError(f"broker registration refused: {result}")
        self.broker_epoch = result.broker_epoch
        return result

    async def beat(self) -> object:
        """One heartbeat, with a node lease when this broker takes them; the result."""
        node_id = self.registration.node_id
        # Both clocks are read before the beat leaves: the lease counts from then on
        # either clock, so this node's deadline is never later than the metadata's.
        sent_mono, sent_wall = time.monotonic_ns() // 1_000_000, time.time_ns() // 1_000_000
        until = None if self._lease_ms is None else sent_wall + self._lease_ms
        result = await self.raft.propose(BrokerHeartbeat(node_id, until))
        if isinstance(result, Applied) and self._lease_ms is not None and self._on_lease is not None:
            self._on_lease(sent_mono + self._lease_ms)
        return result

    async def _run(self) -> None:
        node_id = self.registration.node_id
        next_at = time.monotonic()
        while True:
            # A fixed rate, not a fixed pause: a slow beat must not push the next one
            # back and let the node lease lapse.
            next_at = max(next_at + self.interval_s(), time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())
            try:
                result = await self.beat()
                if (
                    isinstance(result, Refusal)
                    and result.error is MetadataError.BROKER_ID_NOT_REGISTERED
                ):
                    # Unregistered behind our back (an operator, or a stale shutdown of
                    # a previous incarnation): a running broker registers again.
                    log.warning("broker %d was unregistered; registering again", node_id)
                    await self._register()
            except RaftError as exc:
                # The next beat may get through; liveness tolerates missing a couple.
                log.warning("broker %d heartbeat failed: %s", node_id, exc)

    async def stop(self, unregister: bool = False) -> None:
        """Stop heartbeating; with unregister, leave the cluster's broker list now
        instead of after the session timeout."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if unregister:
            with contextlib.suppress(RaftError):
                await self.raft.propose(UnregisterBroker(self.registration.node_id))
