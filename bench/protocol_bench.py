"""Wire-codec throughput against a hand-written ``struct`` ceiling measured in the same run.

    .venv/bin/python bench/protocol_bench.py [--quick]

For each case the ceiling is a hand-written parser/builder of the very same bytes
(header and body fields with ``struct``, record batches sliced, not copied, on decode):
what pure Python can do at best for that frame. The ratio is codec time / ceiling time.
"""

from __future__ import annotations

import argparse
import struct
import sys
import timeit
import uuid
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.protocol import (
    decode_request,
    encode_request,
    encode_response,
    warm_up,
)
from broker.protocol.catalog import uncompiled

PRODUCE_V = 11
FETCH_V = 17
MIB = 1 << 20

_HHIh = struct.Struct(">hhih")
_hi = struct.Struct(">hi")
_i = struct.Struct(">i")
_ii = struct.Struct(">ii")
_ihi = struct.Struct(">ihi")
_ihqqq = struct.Struct(">ihqqq")


def _uvarint(data: memoryview, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    value, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = data[pos]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + 1
        shift += 7


def _uv(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _skip_tags(data: memoryview, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _tag, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def hand_decode_produce(frame: bytes) -> tuple[Any, ...]:
    """ProduceRequest v9+ (header v2), the way one would write it by hand."""
    data = memoryview(frame)
    api_key, version, correlation_id, n = _HHIh.unpack_from(frame, 0)
    pos = 10
    client_id = str(data[pos : pos + n], "utf-8") if n >= 0 else None
    pos = _skip_tags(data, pos + max(n, 0))
    n, pos = _uvarint(data, pos)
    transactional_id = str(data[pos : pos + n - 1], "utf-8") if n else None
    pos += max(n - 1, 0)
    acks, timeout = _hi.unpack_from(frame, pos)
    pos += 6
    topics = []
    count, pos = _uvarint(data, pos)
    for _ in range(count - 1):
        n, pos = _uvarint(data, pos)
        name = str(data[pos : pos + n - 1], "utf-8")
        pos += n - 1
        partitions = []
        pcount, pos = _uvarint(data, pos)
        for _ in range(pcount - 1):
            (index,) = _i.unpack_from(frame, pos)
            n, pos = _uvarint(data, pos + 4)
            records = data[pos : pos + n - 1] if n else None
            pos = _skip_tags(data, pos + max(n - 1, 0))
            partitions.append((index, records))
        pos = _skip_tags(data, pos)
        topics.append((name, partitions))
    pos = _skip_tags(data, pos)
    return api_key, version, correlation_id, client_id, transactional_id, acks, timeout, topics


def hand_encode_fetch(
    correlation_id: int, topic_id: bytes, partitions: list[tuple[int, bytes]]
) -> bytes:
    """FetchResponse v12+ (header v1) with one topic, by hand."""
    parts = [
        b"",
        _i.pack(correlation_id),
        b"\x00",
        _ihi.pack(0, 0, 0),
        _uv(2),
        topic_id,
        _uv(len(partitions) + 1),
    ]
    for index, records in partitions:
        parts.append(_ihqqq.pack(index, 0, 1000, 1000, 0))
        parts.append(b"\x00")  # aborted_transactions: null
        parts.append(_i.pack(-1))
        parts.append(_uv(len(records) + 1))
        parts.append(records)
        parts.append(b"\x00")
    parts.append(b"\x00\x00")  # topic tags, top-level tags
    size = sum(len(p) for p in parts)
    parts[0] = _i.pack(size)
    return b"".join(parts)


def hand_decode_metadata(frame: bytes) -> tuple[Any, ...]:
    """MetadataRequest v12 (header v2), by hand."""
    data = memoryview(frame)
    api_key, version, correlation_id, n = _HHIh.unpack_from(frame, 0)
    pos = 10
    client_id = str(data[pos : pos + n], "utf-8") if n >= 0 else None
    pos = _skip_tags(data, pos + max(n, 0))
    topics = []
    count, pos = _uvarint(data, pos)
    for _ in range(count - 1):
        topic_id = uuid.UUID(bytes=bytes(data[pos : pos + 16]))
        n, pos = _uvarint(data, pos + 16)
        name = str(data[pos : pos + n - 1], "utf-8") if n else None
        pos = _skip_tags(data, pos + max(n - 1, 0))
        topics.append((topic_id, name))
    auto_create, include_ops = data[pos] != 0, data[pos + 1] != 0
    _skip_tags(data, pos + 2)
    return api_key, version, correlation_id, client_id, topics, auto_create, include_ops


def _time(fn: Callable[[], Any], quick: bool) -> float:
    """Best seconds per call over a few repeats (the least disturbed by neighbours)."""
    number = 1
    while True:
        elapsed = timeit.timeit(fn, number=number)
        if elapsed > (0.02 if quick else 0.1):
            break
        number *= 2
    repeats = 3 if quick else 7
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number


def _produce_frame(partitions: list[bytes]) -> bytes:
    body = {
        "transactional_id": None,
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [
            {
                "name": "bench",
                "partition_data": [
                    {"index": i, "records": batch} for i, batch in enumerate(partitions)
                ],
            }
        ],
    }
    return encode_request(0, PRODUCE_V, 1, "bench-client", body)[4:]


def _fetch_body(topic_id: uuid.UUID, partitions: list[bytes]) -> dict[str, Any]:
    return {
        "responses": [
            {
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition_index": i,
                        "high_watermark": 1000,
                        "last_stable_offset": 1000,
                        "log_start_offset": 0,
                        "aborted_transactions": None,
                        "records": batch,
                    }
                    for i, batch in enumerate(partitions)
                ],
            }
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    args = parser.parse_args()
    warm_up([0, 1, 3])

    rows: list[tuple[str, float, int, float]] = []
    topic_id = uuid.uuid4()
    fetch_request = decode_request(encode_request(1, FETCH_V, 99, "bench", {})[4:])
    for label, batches in (
        ("1 x 1 MiB", [bytes(MIB)]),
        ("100 x 1 KiB", [bytes(1024) for _ in range(100)]),
    ):
        payload = sum(len(b) for b in batches)
        frame = _produce_frame(batches)
        decoded = decode_request(frame)
        hand = hand_decode_produce(frame)
        assert [bytes(r) for _, r in hand[7][0][1]] == [
            bytes(p.records) for p in decoded.body.topic_data[0].partition_data
        ]
        rows.append(
            (
                f"decode ProduceRequest v{PRODUCE_V}, {label}",
                _time(lambda frame=frame: decode_request(frame), args.quick),
                payload,
                _time(lambda frame=frame: hand_decode_produce(frame), args.quick),
            )
        )

        body = _fetch_body(topic_id, batches)
        parts = [(i, b) for i, b in enumerate(batches)]
        ours = encode_response(fetch_request, body)
        assert ours == hand_encode_fetch(99, topic_id.bytes, parts), (
            "ceiling must build the same bytes"
        )
        rows.append(
            (
                f"encode FetchResponse v{FETCH_V}, {label}",
                _time(lambda body=body: encode_response(fetch_request, body), args.quick),
                payload,
                _time(lambda parts=parts: hand_encode_fetch(99, topic_id.bytes, parts), args.quick),
            )
        )

    metadata = encode_request(
        3,
        12,
        5,
        "bench-client",
        {
            "topics": [{"topic_id": uuid.UUID(int=0), "name": "bench"}],
            "allow_auto_topic_creation": False,
        },
    )[4:]
    assert hand_decode_metadata(metadata)[4][0][1] == decode_request(metadata).body.topics[0].name
    rows.append(
        (
            "decode MetadataRequest v12, one topic",
            _time(lambda: decode_request(metadata), args.quick),
            0,
            _time(lambda: hand_decode_metadata(metadata), args.quick),
        )
    )

    print("| case | codec µs/op | codec MB/s | ceiling µs/op | ceiling MB/s | codec/ceiling time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, ours_s, payload, ceiling_s in rows:
        mbs = f"{payload / ours_s / 1e6:,.0f}" if payload else "-"
        cmbs = f"{payload / ceiling_s / 1e6:,.0f}" if payload else "-"
        print(
            f"| {label} | {ours_s * 1e6:,.1f} | {mbs} | {ceiling_s * 1e6:,.1f} | {cmbs} | "
            f"{ours_s / ceiling_s:.1f}x |"
        )
    meta_s = rows[-1][1]
    print(
        f"\nMetadataRequest decode_request: {1 / meta_s:,.0f} requests/s "
        f"(ceiling {1 / rows[-1][3]:,.0f}/s)"
    )

    # What .compile() buys: the same schemas run by construct's interpreter.
    frame = _produce_frame([bytes(1024) for _ in range(100)])
    header = uncompiled("RequestHeader", 2)
    produce = uncompiled("ProduceRequest", PRODUCE_V)

    def interpreted() -> Any:
        stream = BytesIO(frame)
        header.parse_stream(stream)
        return produce.parse_stream(stream)

    compiled_s = rows[2][1]
    interpreted_s = _time(interpreted, args.quick)
    print(
        f"ProduceRequest 100 x 1 KiB decode: compiled {compiled_s * 1e6:,.1f} µs, "
        f"interpreted {interpreted_s * 1e6:,.1f} µs ({interpreted_s / compiled_s:.1f}x slower)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
