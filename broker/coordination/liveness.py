"""Keeps this broker registered and alive in the cluster metadata.

A broker is alive while its last heartbeat, as applied through Raft, is younger than
its session timeout: the one it registered with, or the cluster's
``broker.session.timeout.ms``. This task registers the broker, then heartbeats at a third
of that timeout, so two lost heartbeats in a row still leave it alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .commands import BrokerHeartbeat, RegisterBroker, UnregisterBroker
from .errors import MetadataError, Refusal
from .raft import MetadataRaft
from .raft_errors import RaftError
from .results import BrokerRegistered

log = logging.getLogger(__name__)


class BrokerHeartbeats:
    def __init__(
        self, raft: MetadataRaft, registration: RegisterBroker, interval_s: float | None = None
    ) -> None:
        self.raft = raft
        self.registration = registration
        self._interval_s = interval_s
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
        self._task = asyncio.create_task(self._run(), name="broker-heartbeats")
        return registered

    async def _register(self, timeout: float | None = None) -> BrokerRegistered:
        result = await (self.raft.propose(self.registration) if timeout is None
                        else self.raft.propose_until_applied(self.registration, timeout))
        if not isinstance(result, BrokerRegistered):
            raise RuntimeError(f"broker registration refused: {result}")
        self.broker_epoch = result.broker_epoch
        return result

    async def _run(self) -> None:
        node_id = self.registration.node_id
        while True:
            await asyncio.sleep(self.interval_s())
            try:
                result = await self.raft.propose(BrokerHeartbeat(node_id))
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
