"""A produce that finds leadership moving (a roll being proposed, producer state being
learnt) waits on the replica and is woken when it settles, instead of polling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.log import AsyncLog, Flusher, LogConfig, PartitionLog
from broker.partitions.replica import PartitionReplica
from broker.partitions.role import Event

pytestmark = pytest.mark.unit


def test_waiters_wake_when_the_last_reason_to_wait_ends(tmp_path: Path) -> None:
    flusher = Flusher()
    replica = PartitionReplica("t", 0, AsyncLog(PartitionLog.open(str(tmp_path / "t-0"), LogConfig()), flusher))

    async def scenario() -> None:
        assert await replica.wait_until_settled(0.01), "nothing moving: no wait"
        assert replica.role.handle(Event.START_ROLL, 0)
        assert not await replica.wait_until_settled(0.05), "still moving when the time ran out"

        waiting = asyncio.create_task(replica.wait_until_settled(5))
        await asyncio.sleep(0.05)
        assert not replica.role.handle(Event.ROLL_ENDED, 7), "the end of another epoch's roll"
        await asyncio.sleep(0.05)
        assert not waiting.done(), "woken while the roll was still under way"
        started = time.monotonic()
        assert replica.role.handle(Event.ROLL_ENDED, 0)
        assert await waiting
        assert time.monotonic() - started < 0.05

        # Learning producer state holds appends back the same way; a seal does not.
        assert replica.role.handle(Event.START_LEARNING)
        assert replica.moving and replica.learning_producers
        assert replica.role.handle(Event.LEARNED)
        assert replica.role.handle(Event.START_SEALING, 3)
        assert not replica.moving and replica.sealing_epoch == 3
        assert await replica.wait_until_settled(0.01)

    try:
        asyncio.run(scenario())
        assert replica.role.handle(Event.SEAL_ENDED, 3) and not replica.moving
    finally:
        replica.log.close()
        flusher.stop()
