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
