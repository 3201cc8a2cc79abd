"""Framing and ordering on a real loopback socket, with a trivial frame handler."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest
import uvloop

from broker.server.connection import ClientInfo, CloseConnection
from broker.server.listener import KafkaServer

pytestmark = pytest.mark.unit


async def _echo_after_random_delay(client: ClientInfo, frame: bytes) -> bytes | None:
    # Random delays: were frames handled concurrently, later ones would often finish
    # first, and the order tests below would catch it.
    await asyncio.sleep(random.random() / 200)
    if frame == b"silent":
        return None
    if frame == b"close":
        raise CloseConnection("asked to close")
    return struct.pack(">i", len(frame)) + frame


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def _serve(**kwargs: float | int) -> KafkaServer:
    server = KafkaServer(
        _echo_after_random_delay,
        host="127.0.0.1",
        port=0,
        max_request_bytes=int(kwargs.get("max_request_bytes", 1 << 20)),
        idle_timeout_s=float(kwargs.get("idle_timeout_s", 60)),
        queued_max_request_bytes=int(kwargs.get("queued_max_request_bytes", 1 << 30)),
    )
    await server.start()
    return server


def test_pipelined_requests_are_answered_in_order() -> None:
    async def run() -> None:
        server = await _serve()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        payloads = [f"request-{i}".encode() * (i % 7 + 1) for i in range(200)]
        # All requests in one write, split at arbitrary points by TCP.
        writer.write(b"".join(_frame(p) for p in payloads))
        for expected in payloads:
            assert await _read_frame(reader) == expected
        writer.close()
        await server.stop()

    uvloop.run(run())


def test_frames_split_across_many_small_writes() -> None:
    async def run() -> None:
        server = await _serve()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        data = _frame(b"x" * 5000) + _frame(b"") + _frame(b"tail")
        for i in range(0, len(data), 7):
            writer.write(data[i : i + 7])
            await writer.drain()
        assert await _read_frame(reader) == b"x" * 5000
        assert await _read_frame(reader) == b""
        assert await _read_frame(reader) == b"tail"
        writer.close()
        await server.stop()

    uvloop.run(run())


def test_a_client_that_half_closes_is_answered_everything_it_sent() -> None:
    # A client may shut its write side after its last request and read on. The answers
    # come after the handler's random delay, so the end of input arrives while the
    # first request is still being handled: none of them may be dropped.
    async def run() -> None:
        server = await _serve()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        payloads = [f"before-eof-{i}".encode() for i in range(20)]
        writer.write(b"".join(_frame(p) for p in payloads) + b"\x00\x00")  # and a torn prefix
        writer.write_eof()
        for expected in payloads:
            assert await asyncio.wait_for(_read_frame(reader), 5) == expected
        assert await asyncio.wait_for(reader.read(), 5) == b"", "closed once all is answered"
        writer.close()
        await server.stop()

    uvloop.run(run())


def test_no_response_frames_keep_the_order_of_the_rest() -> None:
    async def run() -> None:
        server = await _serve()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_frame(b"a") + _frame(b"silent") + _frame(b"b"))
        assert await _read_frame(reader) == b"a"
        assert await _read_frame(reader) == b"b"
        writer.close()
        await server.stop()

    uvloop.run(run())


@pytest.mark.parametrize("size", [-1, (1 << 20) + 1, 0x7FFFFFFF])
def test_oversized_or_negative_size_closes_before_reading_the_body(size: int) -> None:
    async def run() -> None:
        server = await _serve(max_request_bytes=1 << 20)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack(">i", size) + b"abc")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        # The server still serves others.
        r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
        w2.write(_frame(b"ok"))
        assert await _read_frame(r2) == b"ok"
        w2.close()
        await server.stop()

    uvloop.run(run())


def test_handler_asking_to_close_closes_only_that_connection() -> None:
    async def run() -> None:
        server = await _serve()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_frame(b"first") + _frame(b"close") + _frame(b"never"))
        assert await _read_frame(reader) == b"first"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await server.stop()

    uvloop.run(run())


def test_idle_connection_is_closed() -> None:
    async def run() -> None:
        server = await _serve(idle_timeout_s=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_frame(b"hello"))
        assert await _read_frame(reader) == b"hello"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert server.connection_count == 0
        await server.stop()

    uvloop.run(run())


def test_thousands_of_concurrent_connections() -> None:
    async def run() -> None:
        server = await _serve()
        conns = []
        for _ in range(2000):
            conns.append(await asyncio.open_connection("127.0.0.1", server.port))
        for i, (_, writer) in enumerate(conns):
            writer.write(_frame(str(i).encode()))
        for i, (reader, _) in enumerate(conns):
            assert await _read_frame(reader) == str(i).encode()
        assert server.connection_count == 2000
        for _, writer in conns:
            writer.close()
        await server.stop()

    uvloop.run(run())
