"""Named one-shot timers on the running event loop; scheduling a name again replaces it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable


class Timers:
    def __init__(self) -> None:
        self._handles: dict[Hashable, asyncio.TimerHandle] = {}

    def schedule(self, key: Hashable, delay_ms: float, callback: Callable[[], None]) -> None:
        self.cancel(key)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._handles.pop(key, None)
            callback()

        self._handles[key] = loop.call_later(max(delay_ms, 0) / 1000.0, fire)

    def cancel(self, key: Hashable) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._handles
