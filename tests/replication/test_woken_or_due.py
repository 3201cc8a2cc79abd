"""WokenOrDue (broker/background.py): what the failover and the segment copier run on
instead of a fixed poll. Real event loop, real time (short)."""

from __future__ import annotations

import asyncio

import pytest

from broker.background import WokenOrDue, wait_or_timeout

pytestmark = pytest.mark.unit


def test_a_wake_runs_the_step_at_once_and_an_asked_wait_is_kept() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ran: list[float] = []
        asks: list[float | None] = [None, 0.05, None]

        async def step() -> float | None:
            ran.append(loop.time())
            return asks.pop(0) if asks else None

        async def until(count: int) -> None:
            for _ in range(400):
                if len(ran) >= count:
                    return
                await asyncio.sleep(0.005)
            raise AssertionError(f"the step ran {len(ran)} times, not {count}")

        runner = WokenOrDue("test", step, longest_wait_s=5.0)
        runner.start()
        try:
            await asyncio.sleep(0.1)
            assert ran == [], "nothing runs before a wake or the longest wait"
            woken = loop.time()
            runner.wake()
            await until(1)
            assert ran[0] - woken < 1.0
            runner.wake()  # this round asks to run again in 50 ms
            await until(2)
            await until(3)
            assert 0.045 <= ran[2] - ran[1] < 1.0
            await asyncio.sleep(0.2)
            assert len(ran) == 3, "a step that asks for nothing waits to be woken"
        finally:
            await runner.stop()

    asyncio.run(main())


def test_a_failing_step_does_not_end_the_loop_and_the_longest_wait_is_a_cap() -> None:
    async def main() -> None:
        calls = 0

        async def step() -> float | None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("one bad round")
            return 60.0  # capped at longest_wait_s

        runner = WokenOrDue("test", step, longest_wait_s=0.05)
        runner.start()
        try:
            await asyncio.sleep(0.3)
        finally:
            await runner.stop()
        assert calls >= 3

    asyncio.run(main())


def test_a_cancel_that_comes_as_the_event_is_set_is_not_lost() -> None:
    """What every stop() relies on; asyncio.wait_for on Python 3.11 loses this cancel."""

    async def main() -> None:
        event = asyncio.Event()
        waiting = asyncio.create_task(wait_or_timeout(event, 10))
        await asyncio.sleep(0)
        event.set()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert waiting.cancelled()

    asyncio.run(main())


def test_a_stopped_runner_stops_even_when_woken_at_that_moment() -> None:
    async def main() -> None:
        async def step() -> float | None:
            return None

        runner = WokenOrDue("test", step, longest_wait_s=10.0)
        runner.start()
        await asyncio.sleep(0)
        runner.wake()
        await asyncio.wait_for(runner.stop(), 2)

    asyncio.run(main())
