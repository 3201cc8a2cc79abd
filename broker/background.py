"""Steps that run on the event loop for as long as the node runs: every few hundred
milliseconds (Periodic: in-sync set upkeep, retention), or when woken by an applied
metadata change or at the time the step itself named (WokenOrDue: failover, segment
copies)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` have passed. Built on asyncio.timeout: on Python
    3.11, wait_for drops a cancel that arrives as the event is set, and a loop whose
    stop() cancel was dropped runs on (and stop() waits for it forever)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


class _Background:
    """A named task that runs `loop` from start() until stop()."""

    def __init__(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = loop
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Periodic(_Background):
    def __init__(self, name: str, interval_s: float, step: Callable[[], Awaitable[None]]) -> None:
        super().__init__(name, self._loop)
        self.interval_s = interval_s
        self._step = step

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._step()
            except Exception:
                # One failed round must not end the loop: the next one may succeed.
                log.exception("%s failed", self.name)


class WokenOrDue(_Background):
    """Runs `step` when woken (wake(): an applied entry that concerns it) or when the
    wait `step` asked for has passed, whichever comes first, and at least every
    `longest_wait_s`. `step` returns how many seconds it wants to wait at most; None:
    until woken (or longest_wait_s). Wakes during a step run it once more after it."""

    def __init__(self, name: str, step: Callable[[], Awaitable[float | None]],
                 longest_wait_s: float) -> None:
        super().__init__(name, self._loop)
        self.longest_wait_s = longest_wait_s
        self._step = step
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def _loop(self) -> None:
        wait = self.longest_wait_s
        while True:
            await wait_or_timeout(self._woken, wait)
            self._woken.clear()
            try:
                asked = await self._step()
            except Exception:
                # One failed round must not end the loop: the next one may succeed.
                log.exception("%s failed", self.name)
                asked = None
            wait = self.longest_wait_s if asked is None else min(max(asked, 0.0), self.longest_wait_s)
