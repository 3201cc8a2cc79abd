"""One client connection: size-prefixed framing, in-order responses, back-pressure.

Kafka processes the requests of one connection one at a time, in order, and answers
in that order; clients rely on it (an idempotent producer pipelines up to five Produce
requests and expects them applied in sequence). So frames are parsed as soon as bytes
arrive (pipelining), queued, and a single task per connection handles them in turn.

Each frame's declared size is checked against max_request_bytes and reserved from the
broker-wide RequestMemory before its body is read; it is given back once the request
is answered. Reading stops while the connection has MAX_QUEUED_FRAMES waiting or waits
for memory, so a client that sends faster than it is served fills socket buffers, not
the broker's memory.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from broker.server.request_memory import RequestMemory, Waiter

log = logging.getLogger(__name__)

# Stop reading from a client that has this many requests queued: it is sending faster
# than we handle them, and buffering more only costs memory.
MAX_QUEUED_FRAMES = 64

# Answers larger than this go to a TLS transport in pieces of this size.
TLS_WRITE_CHUNK = 256 * 1024

# The largest frame a client that has not authenticated yet may send on a SASL
# listener (Kafka's sasl.server.max.receive.size): nobody unknown gets to make the
# broker hold max_request_bytes.
UNAUTHENTICATED_MAX_FRAME_BYTES = 512 * 1024

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
    # The listener the client came in on, and its security protocol
    # (broker/server/listener_specs.py): Metadata answers with that listener's addresses.
    listener: str = "PLAINTEXT"
    security_protocol: str = "PLAINTEXT"
    # Who the client is: User:ANONYMOUS until SASL or a client certificate says otherwise.
    principal: str = "User:ANONYMOUS"
    # On a SASL listener, False until an exchange succeeds: only ApiVersions,
    # SaslHandshake and SaslAuthenticate are served before (broker/server/sasl_gate.py).
    authenticated: bool = True
    # time.monotonic() after which the session must be re-authenticated (KIP-368).
    session_expires_at: float | None = None
    # After a failed authentication: close the connection this many seconds after the
    # answer is sent (Kafka's connection.failed.authentication.delay.ms).
    close_after_s: float | None = None
    # The mechanism of the first successful SASL exchange; re-authentication must use it.
    sasl_mechanism: str | None = None
    # After SaslHandshake v0 the client sends the mechanism's tokens as bare frames,
    # not as SaslAuthenticate requests, until the exchange ends.
    sasl_raw_tokens: bool = False


class CloseConnection(Exception):
    """Raised by the dispatcher when Kafka would close the connection (malformed
    request, unknown API); the reason is logged."""


# A request handler: frame (without size prefix) in, encoded response (with size
# prefix) or None (no response, as for acks=0 produce) out.
FrameHandler = Callable[[ClientInfo, bytes], Awaitable[bytes | None]]


# Where the event loop reads each connection's bytes before they join its buffer: one
# per thread (one event loop each), as reads on a loop never interleave. See get_buffer.
_READ_AREA_BYTES = 256 * 1024
_read_areas = threading.local()


def _read_area() -> memoryview:
    area: memoryview | None = getattr(_read_areas, "view", None)
    if area is None:
        area = _read_areas.view = memoryview(bytearray(_READ_AREA_BYTES))
    return area


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(
        self,
        handle_frame: FrameHandler,
        *,
        max_request_bytes: int,
        idle_timeout_s: float,
        memory: RequestMemory,
        on_close: Callable[[KafkaConnection], None] | None = None,
        listener: str = "PLAINTEXT",
        security_protocol: str = "PLAINTEXT",
        on_secure: Callable[[ClientInfo, asyncio.BaseTransport], None] | None = None,
    ) -> None:
        self._handle_frame = handle_frame
        self._max_request_bytes = max_request_bytes
        self._idle_timeout_s = idle_timeout_s
        self._memory = memory
        self._on_close = on_close
        self._buffer = bytearray()
        # (arrival time, frame); each holds len(frame) bytes of the memory budget.
        self._frames: collections.deque[tuple[float, bytes]] = collections.deque()
        # The budget reserved for the frame being read (its declared size), or None
        # while its size prefix has not been admitted yet.
        self._admitted: int | None = None
        self._memory_waiter: Waiter | None = None
        # The frame being handled still holds its bytes of the budget.
        self._handling = 0
        self._frame_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._transport: asyncio.Transport | None = None
        self._worker: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = time.monotonic()
        self._reading_paused = False
        self._queue_full = False
        # A connection inside a long-polling fetch is not idle.
        self._in_handler = False
        self._closed = False
        # The client shut its side (half-close): it sends nothing more but still reads.
        self._eof = False
        self.client = ClientInfo(
            next(_connection_ids), "", 0, listener=listener, security_protocol=security_protocol,
            authenticated=security_protocol not in ("SASL_PLAINTEXT", "SASL_SSL"),
        )
        # Called once the transport is up (TLS handshake done): the principal of a client
        # certificate is taken from it there.
        self._on_secure = on_secure
        self._tls = security_protocol in ("SSL", "SASL_SSL")

    # -- asyncio.Protocol callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have the API.
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client.host, self.client.port = str(peer[0]), int(peer[1])
        if self._on_secure is not None:
            try:
                self._on_secure(self.client, transport)
            except Exception as exc:  # the certificate names nobody the rules accept
                log.warning("closing connection %s from %s:%s: %s", self.client.connection_id,
                            self.client.host, self.client.port, exc)
                self._closed = True
                transport.abort()
                return
        self._worker = asyncio.get_running_loop().create_task(self._work())
        self._schedule_idle_check()

    # A buffered protocol: the loop reads into the thread's read area and hands over
    # the count. Over TLS that spares a 256 KiB bytes object per TLS record and a join
    # per read, which a plain Protocol costs (uvloop's copying read path); the profile
    # of a SASL_SSL produce showed the read path as the largest part of the loop's time.
    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_area()

    def buffer_updated(self, nbytes: int) -> None:
        self._last_activity = time.monotonic()
        self._buffer += _read_area()[:nbytes]
        self._take_frames()

    def data_received(self, data: bytes) -> None:
        self._last_activity = time.monotonic()
        self._buffer += data
        self._take_frames()

    def _take_frames(self) -> None:
        """Move every complete frame in the buffer to the queue, each admitted by the
        memory budget before its body counts; stop at one that must wait."""
        if self._closed:
            return
        now = time.monotonic()
        buf = self._buffer
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
            limit = (self._max_request_bytes if self.client.authenticated
                     else min(self._max_request_bytes, UNAUTHENTICATED_MAX_FRAME_BYTES))
            if size < 0 or size > limit:
                # Kafka refuses such a frame before reading its body and closes.
                log.warning(
                    "closing connection %s from %s:%s: request size %d outside 0..%d%s",
                    self.client.connection_id,
                    self.client.host,
                    self.client.port,
                    size,
                    limit,
                    "" if self.client.authenticated else " (not authenticated yet)",
                )
                self._abort()
                return
            if self._admitted is None:
                if self._memory_waiter is not None:
                    break
                if not self._memory.try_reserve(size):
                    self._memory_waiter = self._memory.wait(size, self._memory_granted)
                    break
                self._admitted = size
            if end - pos - 4 < size:
                break
            view = memoryview(buf)
            try:
                frame = bytes(view[pos + 4 : pos + 4 + size])
            finally:
                view.release()
            self._frames.append((now, frame))
            self._admitted = None  # the frame in the queue holds its reservation now
            pos += 4 + size
        if pos:
            del buf[:pos]
        if self._frames:
            self._frame_ready.set()
        self._queue_full = len(self._frames) >= MAX_QUEUED_FRAMES
        self._update_reading()

    def _memory_granted(self, size: int) -> None:
        self._memory_waiter = None
        self._admitted = size
        # Not from inside the budget's release: the loop runs it next.
        asyncio.get_running_loop().call_soon(self._take_frames)

    def _update_reading(self) -> None:
        """Read while the queue has room and no frame waits for memory."""
        if self._transport is None or self._closed:
            return
        pause = self._queue_full or self._memory_waiter is not None
        if pause and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        elif not pause and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    def _release_all(self) -> None:
        """Give back every reservation this connection holds but the one of the frame
        in its handler (the worker gives that back)."""
        held = sum(len(frame) for _, frame in self._frames) + (self._admitted or 0)
        self._frames.clear()
        self._admitted = None
        if self._memory_waiter is not None:
            self._memory.cancel(self._memory_waiter)
            self._memory_waiter = None
        if held:
            self._memory.release(held)

    def eof_received(self) -> bool | None:
        # A client that shuts its write side after its last request still reads the
        # answers: every complete request it sent is handled and answered, then the
        # connection closes (the worker closes it once the queue is empty). Dropping
        # them instead would cancel a produce that is mid-forward, storing nothing or,
        # worse, leaving the client not knowing which. TLS cannot stay half-open
        # (asyncio ignores True there), so a TLS connection closes at once as before.
        if self._tls:
            return None
        self._eof = True
        self._frame_ready.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._release_all()
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
                    if self._eof and self._memory_waiter is None:
                        self.close()  # everything sent before the half-close is answered
                        return
                    self._frame_ready.clear()
                    await self._frame_ready.wait()
                    continue
                self.client.received_at, frame = self._frames.popleft()
                if self._queue_full and len(self._frames) < MAX_QUEUED_FRAMES // 2:
                    self._queue_full = False
                    self._update_reading()
                self._in_handler = True
                self._handling = len(frame)
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
                    # The request is done with (its answer, if any, is encoded): its
                    # bytes go back to the budget.
                    del frame
                    self._memory.release(self._handling)
                    self._handling = 0
                if response is not None and not self._closed:
                    if self._tls and len(response) > TLS_WRITE_CHUNK:
                        await self._write_in_pieces(response)
                    else:
                        self._transport.write(response)  # type: ignore[union-attr]
                    self._last_activity = time.monotonic()
                    if not self._can_write.is_set():
                        await self._can_write.wait()
                if self.client.close_after_s is not None:
                    await self._close_later(self.client.close_after_s)
                    return
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection %s: unexpected error; closing", self.client.connection_id)
            self._abort()

    async def _write_in_pieces(self, response: bytes) -> None:
        """A large answer on a TLS connection, a piece at a time, each once the socket
        has taken the one before. The TLS layer encrypts whatever it is given into a
        memory buffer and holds it there while the socket is busy: a 10 MiB fetch answer
        written at once grows that buffer to 10 MiB, re-copied as it grows (encrypting
        at ~0.6 GB/s here, against ~1.7 GB/s in 256 KiB pieces)."""
        view = memoryview(response)
        write = self._transport.write  # type: ignore[union-attr]
        for start in range(0, len(view), TLS_WRITE_CHUNK):
            if self._closed:
                return
            write(view[start : start + TLS_WRITE_CHUNK])
            if not self._can_write.is_set():
                await self._can_write.wait()

    async def _close_later(self, delay_s: float) -> None:
        """Read nothing more, and close once `delay_s` has passed: a client whose
        authentication failed cannot retry at once on the same connection (Kafka's
        connection.failed.authentication.delay.ms)."""
        self._release_all()
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()
            self._reading_paused = True
        await asyncio.sleep(delay_s)
        self.close()

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
