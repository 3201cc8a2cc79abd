"""The broker-wide budget for request bytes: its admission rules alone, then on real
loopback connections with a trivial frame handler."""

from __future__ import annotations

import asyncio
import struct

import pytest
import uvloop

from broker.server.connection import ClientInfo
from broker.server.listener import KafkaServer
from broker.server.request_memory import SMALL_FRAME_BYTES, RequestMemory

pytestmark = pytest.mark.unit

MiB = 1 << 20


def test_a_frame_is_admitted_while_anything_is_left_then_waits_its_turn() -> None:
    memory = RequestMemory(10 * MiB)
    assert memory.try_reserve(6 * MiB)
    # Not strict, as Kafka's pool: 4 MiB are left, so 8 MiB still get in...
    assert memory.try_reserve(8 * MiB)
    # ...but nothing large after that, and whoever waits is served in order.
    assert not memory.try_reserve(1 * MiB)
    granted: list[str] = []
    memory.wait(3 * MiB, lambda size: granted.append(f"first {size >> 20}"))
    second = memory.wait(2 * MiB, lambda size: granted.append("second"))
    third = memory.wait(2 * MiB, lambda size: granted.append("third"))
    assert not memory.try_reserve(SMALL_FRAME_BYTES + 1), "a newcomer does not jump the queue"
    memory.cancel(second)
    memory.release(8 * MiB)  # 6 held: first gets in (6 < 10), then third (9 < 10)
    assert granted == ["first 3", "third"]
    assert memory.used == 11 * MiB and memory.waiting == 0
    assert third.size == 2 * MiB


def test_small_frames_pass_large_ones_and_have_headroom() -> None:
    memory = RequestMemory(8 * MiB)
    assert memory.headroom == 1 * MiB
    assert memory.try_reserve(7 * MiB)
    assert memory.try_reserve(4 * MiB)  # over the capacity now, by one frame
    assert not memory.try_reserve(SMALL_FRAME_BYTES + 1)
    memory.wait(5 * MiB, lambda size: None)
    # ApiVersions, heartbeats, metadata: through, up to the headroom.
    small = 0
    while memory.try_reserve(SMALL_FRAME_BYTES):
        small += 1
    assert small == 16 and memory.used == 12 * MiB
    granted: list[int] = []
    memory.wait(100, granted.append)
    memory.release(SMALL_FRAME_BYTES)
    assert granted == [100]
    with pytest.raises(ValueError):
        RequestMemory(0)


async def _serve(**kwargs: int) -> tuple[KafkaServer, list[bytes]]:
    handled: list[bytes] = []

    async def handle(client: ClientInfo, frame: bytes) -> bytes | None:
        handled.append(frame[:8])
        return struct.pack(">i", len(frame[:8])) + frame[:8]

    server = KafkaServer(handle, host="127.0.0.1", port=0, idle_timeout_s=60, **kwargs)
    await server.start()
    return server, handled


async def _until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_half_sent_frames_hold_the_budget_and_others_wait_without_being_buffered() -> None:
    async def run() -> None:
        server, handled = await _serve(max_request_bytes=4 * MiB, queued_max_request_bytes=4 * MiB)
        # A client declares a 3 MiB frame and sends half: its 3 MiB are reserved.
        _, stalled = await asyncio.open_connection("127.0.0.1", server.port)
        stalled.write(struct.pack(">i", 3 * MiB) + b"s" * (3 * MiB // 2))
        await _until(lambda: server.memory.used == 3 * MiB)
        # Another's 2 MiB frame still gets in (something was left); a third waits, and
        # its body is not read meanwhile.
        reader2, second = await asyncio.open_connection("127.0.0.1", server.port)
        second.write(struct.pack(">i", 2 * MiB) + b"2" * (2 * MiB))
        assert (await reader2.readexactly(12))[4:] == b"22222222"
        reader3, third = await asyncio.open_connection("127.0.0.1", server.port)
        hold = asyncio.ensure_future(reader3.readexactly(12))
        _, fourth = await asyncio.open_connection("127.0.0.1", server.port)
        fourth.write(struct.pack(">i", 3 * MiB) + b"4" * (MiB // 2))
        await _until(lambda: server.memory.used == 6 * MiB)
        third.write(struct.pack(">i", 2 * MiB) + b"3" * (2 * MiB))
        await _until(lambda: server.memory.waiting == 1)
        # Small requests are still served.
        reader5, fifth = await asyncio.open_connection("127.0.0.1", server.port)
        fifth.write(struct.pack(">i", 8) + b"small-ok")
        assert (await reader5.readexactly(12))[4:] == b"small-ok"
        assert not hold.done()
        # The stalled client goes away: its reservation comes back, the third is read.
        stalled.close()
        assert (await asyncio.wait_for(hold, 5))[4:] == b"33333333"
        fourth.close()
        await _until(lambda: server.memory.used == 0)
        for writer in (second, third, fifth):
            writer.close()
        await server.stop()
        assert handled == [b"22222222", b"small-ok", b"33333333"]

    uvloop.run(run())


def test_a_frame_larger_than_max_request_bytes_closes_before_its_body() -> None:
    async def run() -> None:
        server, handled = await _serve(max_request_bytes=1 * MiB, queued_max_request_bytes=8 * MiB)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack(">i", 1 * MiB + 1) + b"x" * 100)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        assert server.memory.used == 0 and not handled
        writer.close()
        await server.stop()

    uvloop.run(run())
