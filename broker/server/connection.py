"""One client connection: size-prefixed framing, in-order responses, back-pressure.

Kafka processes the requests of one connection one at a time, in order, and answers
in that order; clients rely on it (an idempotent producer pipelines up to five Produce
requests and expects them applied in sequence). So frames are parsed as soon as bytes
arrive (pipelining), queued, and a single task per connection handles them in turn.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Stop reading from a client that has this many requests queued: it is sending faster
# than we handle them, and buffering more only costs memory.
MAX_QUEUED_FRAMES = 64

_connection_ids = itertools.count(1)


@dataclass(slots=True)
class ClientInfo:
    connection_id: int
    host: str
    port: int
    # When the frame being handled arrived (time.monotonic()): a handler can tell what
    # the client sent before it could have read an earlier answer.
    received_at: float = 0.0
    # What handlers keep for this connection, by handler (Produce: its order gate).
    handler_state: dict[str, object] = field(default_factory=dict)
    # The cluster node this connection proved it is (broker/security/node_identity.py);
    # None for every client. Only a proven node skips ACLs, has its replica id believed
    # or is answered from local data without forwarding.
    node_id: int | None = None


class CloseConnection(Exception):
    """Raised by the dispatcher when Kafka would close the connection (malformed
    request, unknown API); the reason is logged."""


# A request handler: frame (without size prefix) in, encoded response (with size
# prefix) or None (no response, as for acks=0 produce) out.
FrameHandler = Callable[[ClientInfo, bytes], Awaitable[bytes | None]]


class KafkaConnection(asyncio.Protocol):
    def __init__(
        self,
        handle_frame: FrameHandler,
        *,
        max_request_bytes: int,
        idle_timeout_s: float,
        on_close: Callable[[KafkaConnection], None] | None = None,
    ) -> None:
        self._handle_frame = handle_frame
        self._max_request_bytes = max_request_bytes
        self._idle_timeout_s = idle_timeout_s
        self._on_close = on_close
        self._buffer = bytearray()
        # (arrival time, frame)
        self._frames: collections.deque[tuple[float, bytes]] = collections.deque()
        self._frame_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._transport: asyncio.Transport | None = None
        self._worker: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = time.monotonic()
        self._reading_paused = False
        # A connection inside a long-polling fetch is not idle.
        self._in_handler = False
        self._closed = False
        self.client = ClientInfo(next(_connection_ids), "", 0)

    # -- asyncio.Protocol callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have the API.
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client.host, self.client.port = str(peer[0]), int(peer[1])
        self._worker = asyncio.get_running_loop().create_task(self._work())
        self._schedule_idle_check()

    def data_received(self, data: bytes) -> None:
        now = self._last_activity = time.monotonic()
        buf = self._buffer
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
            if size < 0 or size > self._max_request_bytes:
                # Kafka refuses such a frame before reading its body and closes.
                log.warning(
                    "closing connection %s from %s:%s: request size %d outside 0..%d",
                    self.client.connection_id,
                    self.client.host,
                    self.client.port,
                    size,
                    self._max_request_bytes,
                )
                self._abort()
                return
            if end - pos - 4 < size:
                break
            self._frames.append((now, bytes(buf[pos + 4 : pos + 4 + size])))
            pos += 4 + size
        if pos:
            del buf[:pos]
        if self._frames:
            self._frame_ready.set()
            if len(self._frames) >= MAX_QUEUED_FRAMES and not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._frame_ready.set()
        self._can_write.set()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- request processing ----------------------------------------------------------
    async def _work(self) -> None:
        try:
            while not self._closed:
                if not self._frames:
                    self._frame_ready.clear()
                    await self._frame_ready.wait()
                    continue
                self.client.received_at, frame = self._frames.popleft()
                if self._reading_paused and len(self._frames) < MAX_QUEUED_FRAMES // 2:
                    self._reading_paused = False
                    self._transport.resume_reading()  # type: ignore[union-attr]
                self._in_handler = True
                try:
                    response = await self._handle_frame(self.client, frame)
                except CloseConnection as exc:
                    log.warning(
                        "closing connection %s from %s:%s: %s",
                        self.client.connection_id,
                        self.client.host,
                        self.client.port,
                        exc,
                    )
                    self._abort()
                    return
                finally:
                    self._in_handler = False
                if response is not None and not self._closed:
                    self._transport.write(response)  # type: ignore[union-attr]
                    self._last_activity = time.monotonic()
                    if not self._can_write.is_set():
                        await self._can_write.wait()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection %s: unexpected error; closing", self.client.connection_id)
            self._abort()

    # -- idle connections ---------------------------------------------------------
    def _schedule_idle_check(self) -> None:
        if self._idle_timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self._idle_timeout_s / 4, self._check_idle)

    def _check_idle(self) -> None:
        if self._closed:
            return
        if (
            not self._frames
            and not self._in_handler
            and time.monotonic() - self._last_activity > self._idle_timeout_s
        ):
            log.info(
                "closing idle connection %s from %s:%s",
                self.client.connection_id,
                self.client.host,
                self.client.port,
            )
            self._abort()
            return
        self._schedule_idle_check()

    def _abort(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()
