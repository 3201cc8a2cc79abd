"""One budget for the bytes of requests held in memory across all connections (Kafka's
`queued.max.request.bytes`).

A connection reserves a frame's declared size from the budget as soon as the 4-byte
size prefix arrives, before it reads the body, and gives it back once the request has
been answered. While the budget is spent, a connection that needs more stops reading
from its socket (the kernel's buffers, then TCP, push back on the client) instead of
buffering: twenty clients each sending 80 MiB of a frame they never finish can no
longer take 1.6 GB between them.

Admission follows Kafka's memory pool, which is not strict: a frame is admitted while
*anything* is left, so one larger than what remains still gets in (it never starves),
and the bytes held stay below the capacity plus one frame of max_request_bytes.
Frames wait their turn in arrival order.

Small frames (up to SMALL_FRAME_BYTES: ApiVersions, Metadata, heartbeats, offset
commits) have a headroom of their own besides, an eighth of the capacity, and do not
queue behind large ones: a budget taken by large requests, or by clients that hold
half-sent ones, still lets group heartbeats and metadata refreshes through. All told,
requests hold at most capacity + max_request_bytes + headroom.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

SMALL_FRAME_BYTES = 64 * 1024


@dataclass(slots=True, eq=False)
class Waiter:
    size: int
    granted: Callable[[int], None]
    cancelled: bool = False


class RequestMemory:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queued_max_request_bytes must be at least 1, not {capacity}")
        self.capacity = capacity
        self.headroom = max(capacity // 8, SMALL_FRAME_BYTES)
        self.used = 0
        # The part of `used` held by small frames, wherever they were admitted.
        self.small_used = 0
        self._large_waiters: collections.deque[Waiter] = collections.deque()
        self._small_waiters: collections.deque[Waiter] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._large_waiters) + len(self._small_waiters)

    def _fits(self, size: int) -> bool:
        if self.used < self.capacity:
            return True
        return size <= SMALL_FRAME_BYTES and self.small_used + size <= self.headroom

    def _take(self, size: int) -> None:
        self.used += size
        if size <= SMALL_FRAME_BYTES:
            self.small_used += size

    def try_reserve(self, size: int) -> bool:
        """Reserve `size` bytes now if the budget allows and nobody of the same kind is
        waiting ahead; False otherwise (then call `wait`)."""
        queue = self._small_waiters if size <= SMALL_FRAME_BYTES else self._large_waiters
        if queue or not self._fits(size):
            return False
        self._take(size)
        return True

    def wait(self, size: int, granted: Callable[[int], None]) -> Waiter:
        """Queue for `size` bytes; `granted(size)` is called (on the event loop, from a
        `release`) once they are reserved for the caller."""
        waiter = Waiter(size, granted)
        (self._small_waiters if size <= SMALL_FRAME_BYTES else self._large_waiters).append(waiter)
        return waiter

    def cancel(self, waiter: Waiter) -> None:
        """The connection went away while waiting: it gets nothing and holds nothing."""
        waiter.cancelled = True

    def release(self, size: int) -> None:
        self.used -= size
        if size <= SMALL_FRAME_BYTES:
            self.small_used -= size
        assert self.used >= 0 and self.small_used >= 0, "request memory released twice"
        self._grant(self._small_waiters)
        self._grant(self._large_waiters)

    def _grant(self, queue: collections.deque[Waiter]) -> None:
        while queue:
            head = queue[0]
            if head.cancelled:
                queue.popleft()
                continue
            if not self._fits(head.size):
                return
            queue.popleft()
            self._take(head.size)
            head.granted(head.size)
