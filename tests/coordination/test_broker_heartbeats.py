"""BrokerHeartbeats against a real one-member metadata group."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.coordination import ClusterState, MetadataRaft
from broker.coordination.commands import AlterClusterConfig, RegisterBroker, UnregisterBroker
from broker.coordination.liveness import BrokerHeartbeats

from .processes import free_port

pytestmark = pytest.mark.unit

SESSION_MS = 400


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_heartbeats_keep_a_broker_alive_and_it_dies_after_they_stop(tmp_path: Path) -> None:
    async def main() -> None:
        addr = f"127.0.0.1:{free_port()}"
        raft = MetadataRaft(1, addr, [addr], tmp_path, ClusterState())
        try:
            await raft.wait_ready(10)
            await raft.propose(AlterClusterConfig({"broker.session.timeout.ms": str(SESSION_MS)}))
            beats = BrokerHeartbeats(raft, RegisterBroker(1, "127.0.0.1", 9092, raft_address=addr))
            assert beats.interval_s() == pytest.approx(SESSION_MS / 3000)
            registered = await beats.start()
            assert registered.node_id == 1 and beats.broker_epoch == registered.broker_epoch

            await asyncio.sleep(3 * SESSION_MS / 1000)  # several sessions long
            with raft.reading() as state:
                assert state.live_broker_ids(now_ms()) == [1]
                assert state.brokers[1].raft_address == addr

            # unregistered behind its back: the running broker registers again
            await raft.propose(UnregisterBroker(1))
            await asyncio.sleep(2 * SESSION_MS / 1000)
            with raft.reading() as state:
                assert 1 in state.brokers
            assert beats.broker_epoch is not None and beats.broker_epoch > registered.broker_epoch

            await beats.stop()
            await asyncio.sleep(1.5 * SESSION_MS / 1000)
            with raft.reading() as state:
                assert 1 in state.brokers and state.live_broker_ids(now_ms()) == []

            await beats.stop(unregister=True)
            with raft.reading() as state:
                assert state.brokers == {}
        finally:
            raft.close()

    asyncio.run(main())


class _SlowCommits:
    """A real metadata group whose every proposal takes `delay_s` longer to come back:
    a busy Raft leader's commit latency."""

    def __init__(self, raft: MetadataRaft, delay_s: float) -> None:
        self._raft = raft
        self._delay_s = delay_s

    def __getattr__(self, name: str) -> object:
        return getattr(self._raft, name)

    async def propose(self, command: object, timeout: float | None = None) -> object:
        await asyncio.sleep(self._delay_s)
        return await self._raft.propose(command, timeout)


def test_a_commit_slower_than_the_interval_does_not_let_the_node_lease_lapse(tmp_path: Path) -> None:
    """Commits take 0.3 s, beats go every 0.1 s, a lease lasts 0.5 s. Each beat waiting
    for the one before would renew every 0.3 s with a lease counted from 0.3 s earlier,
    so the lease would lapse; beats that do not wait keep it held throughout."""
    lease_ms, delay_s = 500, 0.3

    async def main() -> None:
        addr = f"127.0.0.1:{free_port()}"
        raft = MetadataRaft(1, addr, [addr], tmp_path, ClusterState())
        grants: list[tuple[int, int]] = []  # (when granted, deadline), monotonic ms
        try:
            await raft.wait_ready(10)
            beats = BrokerHeartbeats(
                _SlowCommits(raft, delay_s),  # type: ignore[arg-type]
                RegisterBroker(1, "127.0.0.1", 9092, raft_address=addr), 0.1,
                lease_ms=lease_ms,
                on_lease=lambda deadline: grants.append((time.monotonic_ns() // 1_000_000, deadline)))
            await beats.start()
            await asyncio.sleep(2.0)
            await beats.stop()
        finally:
            raft.close()
        assert len(grants) >= 12, grants
        # From the first beat of the running loop on: start() waits for its own beat
        # before the loop begins, before this node is handed anything to lead.
        held_until = grants[1][1]
        for granted_at, deadline in grants[2:]:
            assert granted_at < held_until, f"the lease lapsed from {held_until} to {granted_at}"
            held_until = max(held_until, deadline)

    asyncio.run(main())
