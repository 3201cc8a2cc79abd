"""A produce that finds leadership moving (a roll being proposed, producer state being
learnt) waits on the replica and is woken when it settles, instead of polling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.log import AsyncLog, Flusher, LogConfig, PartitionLog
from broker.partitions.replica import PartitionReplica

pytestmark = pytest.mark.unit


def test_waiters_wake_when_the_last_reason_to_wait_ends(tmp_path: Path) -> None:
    flusher = Flusher()
    replica = PartitionReplica("t", 0, AsyncLog(PartitionLog.open(str(tmp_path / "t-0"), LogConfig()), flusher))

    async def scenario() -> None:
        assert await replica.wait_until_settled(0.01), "nothing moving: no wait"
        replica.rolling_epoch = 0
        replica.learning_producers = True
        assert not await replica.wait_until_settled(0.05), "still moving when the time ran out"

        loop = asyncio.get_running_loop()
        waiting = asyncio.create_task(replica.wait_until_settled(5))
        loop.call_later(0.05, setattr, replica, "rolling_epoch", None)
        await asyncio.sleep(0.1)
        assert not waiting.done(), "woken while producer state was still being learnt"
        started = time.monotonic()
        replica.learning_producers = False
        assert await waiting
        assert time.monotonic() - started < 0.05

    try:
        asyncio.run(scenario())
        assert not replica.moving
    finally:
        replica.log.close()
        flusher.stop()
