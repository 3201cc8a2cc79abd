"""A follower sealing a dead leader's segment takes nothing more of it from the old
leader, from the moment it picks the seal offset until the seal is applied.

The old leader may be alive: its lease lapsed (a stall after a restart, say). Records a
follower fetched after the seal offset was chosen would be cut by the seal, and the old
leader would have counted that follower's fetch towards an acks=all answer: an
acknowledged record lost. The 5-node kill loop found exactly that. A real in-process
node follows a segment led by node 2, which is only registered."""

from __future__ import annotations

import asyncio
import time

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import BrokerHeartbeat, CreateTopic, RegisterBroker
from broker.interbroker.peer_api import FetchedPart
from broker.partitions.role import Event
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch

pytestmark = pytest.mark.unit


def _batch(base_offset: int, value: bytes) -> bytes:
    return encode_batch([Record(0, 0, None, value, [])], base_offset=base_offset)


def test_the_sealer_stops_taking_the_old_leaders_records_and_seals_where_it_stood(runner: NodeRunner) -> None:
    node = runner.node
    assert node.replicas is not None
    runner.run(node.propose(RegisterBroker(2, "127.0.0.1", 1)))
    runner.run(node.propose(CreateTopic("sealed", b"\x09" * 16, assignments=[[2, 1]])))
    replica = node.replicas.get_or_open("sealed", 0)
    replica.begin_segment(0, 0)
    # What this follower fetched from node 2 before node 2's lease lapsed.
    node.fetcher._apply("sealed", 0, FetchedPart(ErrorCode.NONE, 0, 0, _batch(0, b"kept")), 0)
    assert replica.log_end_offset == 1

    # While this node seals epoch 0, an answer of the old leader still arriving is dropped.
    assert replica.role.handle(Event.START_SEALING, 0)
    node.fetcher._apply("sealed", 0, FetchedPart(ErrorCode.NONE, 1, 0, _batch(1, b"late")), 0)
    assert replica.log_end_offset == 1
    assert replica.role.handle(Event.SEAL_ENDED, 0)

    # Node 2's node lease lapses: the failover seals epoch 0 where this node stands.
    lapsed = time.time_ns() // 1_000_000 + 10
    runner.run(node.propose(BrokerHeartbeat(2, lapsed)))
    time.sleep(0.05)

    async def fail_over() -> None:
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            await node.failover.check_once()
            with node.metadata() as state:
                active = state.active_segment("sealed", 0)
                if active is not None and active.epoch > 0:
                    return
            assert asyncio.get_running_loop().time() < deadline, "no failover"
            await asyncio.sleep(0.1)

    runner.run(fail_over())
    with node.metadata() as state:
        partition = state.partition("sealed", 0)
        assert partition is not None
        sealed, active = partition.segments[0], partition.active
    assert (sealed.end_offset, active.leader, active.base_offset) == (1, node.node_id, 1)
    assert replica.sealing_epoch is None, "still frozen after the seal was applied"
