"""The replica fetcher re-reads what this node follows when a metadata entry moves the
topology, not on its next periodic look (replication/fetcher.py, coordination/topology_watch.py)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import BrokerHeartbeat, RegisterBroker, RollSegment
from broker.coordination.topology_watch import TopologyWatch
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

OTHER = 2
TOPIC = "followed"


def _led_here_followed_by_other(runner: NodeRunner) -> None:
    """TOPIC-0, led by the runner's node, with OTHER (registered, never running) as its
    follower."""
    node = runner.node
    runner.run(node.propose(RegisterBroker(OTHER, "127.0.0.1", 1)))
    runner.run(node.propose(BrokerHeartbeat(OTHER)))
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": TOPIC, "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": 0, "broker_ids": [node.node_id, OTHER]}]}],
        "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE
    runner.run(node.propose(BrokerHeartbeat(OTHER)))


def test_a_roll_that_makes_this_node_a_follower_is_followed_at_once(tmp_path: Path) -> None:
    # With a periodic look once a minute, only the apply can account for a prompt start.
    runner = NodeRunner(tmp_path / "data", follower_refresh_interval_ms=60_000)
    try:
        node = runner.node
        _led_here_followed_by_other(runner)
        assert node.fetcher._assigned.get(OTHER) is None  # this node leads epoch 0

        runner.run(node.propose(RollSegment(TOPIC, 0, 0, 0)))
        with node.metadata() as state:
            assert state.leader_for(TOPIC, 0) == OTHER, "the roll should hand epoch 1 to the other node"
        deadline = time.monotonic() + 1
        while not node.fetcher._assigned.get(OTHER):
            assert time.monotonic() < deadline, "the fetcher did not follow the roll's apply"
            time.sleep(0.01)
        assert [(f.topic, f.epoch) for f in node.fetcher._assigned[OTHER]] == [(TOPIC, 1)]
    finally:
        runner.close()


def test_waiters_wake_only_when_the_topology_version_moves() -> None:
    async def scenario() -> None:
        watch = TopologyWatch()
        assert watch.observe(3)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch.add_waiter(waiter)
        assert not watch.observe(3)
        assert not waiter.done()
        assert watch.observe(4)
        assert waiter.done()

    asyncio.run(scenario())


def test_a_followers_long_poll_is_answered_when_the_topology_moves(tmp_path: Path) -> None:
    # The follower then asks again, with whatever partition it now follows here,
    # instead of waiting out a poll that cannot include it.
    runner = NodeRunner(tmp_path / "data")
    try:
        _led_here_followed_by_other(runner)

        def poll() -> float:
            started = time.monotonic()
            answer = runner.call("Fetch", 12, {
                "replica_id": OTHER, "max_wait_ms": 10_000, "min_bytes": 1, "max_bytes": 1 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [],
                "rack_id": "", "topics": [{"topic": TOPIC, "partitions": [{
                    "partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                    "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]}, as_node=OTHER)
            assert answer.responses[0].partitions[0].error_code == ErrorCode.NONE
            return time.monotonic() - started

        pool = ThreadPoolExecutor(1)
        waited = pool.submit(poll)
        time.sleep(0.5)
        runner.call("CreateTopics", 7, {"topics": [{
            "name": "another", "num_partitions": 1, "replication_factor": -1, "configs": [], "assignments": []}],
            "timeout_ms": 5000, "validate_only": False})
        took = waited.result(20)
        pool.shutdown()
        assert 0.4 < took < 3, f"the follower's poll took {took:.1f}s"
    finally:
        runner.close()


def test_a_loop_that_is_no_longer_the_leaders_follower_ends_by_itself(tmp_path: Path) -> None:
    """A cancel can be lost (Python 3.11's wait_for returns an answer that came in at the
    same moment): the superseded loop must end on its own, or two loops fetch the same
    partitions and every other answer fails to append."""
    runner = NodeRunner(tmp_path / "data", follower_refresh_interval_ms=60_000)
    try:
        node = runner.node
        _led_here_followed_by_other(runner)
        runner.run(node.propose(RollSegment(TOPIC, 0, 0, 0)))
        deadline = time.monotonic() + 2
        while OTHER not in node.fetcher._loops:
            assert time.monotonic() < deadline, "the fetcher did not start following the other node"
            time.sleep(0.01)

        async def supersede() -> bool:
            fetcher = node.fetcher
            old = fetcher._loops[OTHER]
            # What the supervisor does after a cancel that did not take.
            fetcher._loops[OTHER] = asyncio.create_task(fetcher._follow(OTHER))
            await asyncio.wait_for(asyncio.shield(old), 5)
            return old.cancelled()

        assert runner.run(supersede()) is False, "the old loop should have ended itself"
    finally:
        runner.close()
