"""Long loops over what a request names, in slices of the event loop's time.

Every connection shares one event loop, so a handler that walks a list of a hundred
thousand names in one go holds every other client up for as long. A handler that
calls `Pacer.pause_if_due()` between items (never while holding a lock) hands the loop
back at least every SLICE_S seconds; the cost when not due is one clock read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

SLICE_S = 0.01

T = TypeVar("T")


class Pacer:
    __slots__ = ("_since", "_slice_s")

    def __init__(self, slice_s: float = SLICE_S) -> None:
        self._slice_s = slice_s
        self._since = time.monotonic()

    async def pause_if_due(self) -> None:
        if time.monotonic() - self._since >= self._slice_s:
            await asyncio.sleep(0)
            self._since = time.monotonic()


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive pieces of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
