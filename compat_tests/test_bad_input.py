"""Random and mutated frames against a live broker: it answers or closes the
connection, never crashes, and the data it stored stays intact. Among the frames are
produce requests with compressed batches and with batches whose header lies (the
CRC matching), sent as they are and mutated; none of the lies may be stored."""

from __future__ import annotations

import random
import socket
import struct
import time
import uuid

import pytest

from broker.protocol import encode_request
from broker.protocol.records import (
    Compression,
    Record,
    check_batch_contents,
    compress,
    encode_batch,
    iter_batches,
    reframe_batch,
)
from compat_tests.clients import consume, produce, sample_messages
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

pytestmark = [pytest.mark.compat, pytest.mark.fault]

FRAMES = 20000
SEED = 20261127


def _produce_frame(topic: str, correlation: int, batch: bytes) -> bytes:
    return encode_request(0, 9, correlation, "fuzz", {"acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})


def _honest_batches() -> list[bytes]:
    records = [Record(i, 0, b"k", b"v" * i, []) for i in range(5)]
    return [encode_batch(records, compression=codec) for codec in Compression]


def _lying_batches() -> list[bytes]:
    """Batches whose CRC matches but whose header the records do not bear out."""
    honest = _honest_batches()
    gzip, lz4 = honest[Compression.GZIP], honest[Compression.LZ4]
    return [
        reframe_batch(honest[0], records_count=6, last_offset_delta=5),
        reframe_batch(honest[0], records_count=4, last_offset_delta=3),
        reframe_batch(encode_batch([Record(d, 0, None, b"d", []) for d in (0, 1, 1, 3)])),
        reframe_batch(gzip, records_count=2_000_000_000, last_offset_delta=1_999_999_999),
        reframe_batch(lz4, records_count=7, last_offset_delta=6),
        reframe_batch(gzip, section=random.Random(3).randbytes(200)),
        reframe_batch(honest[0], compression=Compression.ZSTD,
                      section=compress(Compression.ZSTD, bytes(100 << 20))),
        reframe_batch(honest[0], compression=Compression.SNAPPY, section=b"\xff\xff\xff\x0f" * 8),
        encode_batch([]),
    ]


def _valid_frames(topic: str) -> list[bytes]:
    batch = encode_batch([Record(i, 0, b"k", b"v" * i, []) for i in range(5)])
    return [
        encode_request(18, 3, 1, "fuzz", {"client_software_name": "fuzz", "client_software_version": "1"}),
        encode_request(3, 12, 2, "fuzz", {"topics": [{"name": topic}], "allow_auto_topic_creation": True}),
        _produce_frame(topic, 3, batch),
        encode_request(1, 12, 4, "fuzz", {"max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                          "session_epoch": -1, "topics": [{"topic": topic, "partitions": [
                                              {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 65536}]}]}),
        encode_request(2, 7, 5, "fuzz", {"replica_id": -1, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -2}]}]}),
        encode_request(2, 7, 7, "fuzz", {"replica_id": -1, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": 0}]}]}),
        encode_request(10, 3, 6, "fuzz", {"key": "g", "key_type": 0}),
        *(_produce_frame(topic, 8, honest) for honest in _honest_batches()[1:]),
    ]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    body = bytearray(frame[4:])
    kind = rng.randrange(6)
    if kind == 0 and body:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        del body[rng.randrange(len(body) + 1):]
    elif kind == 2:  # extend with garbage
        body += rng.randbytes(rng.randint(1, 64))
    elif kind == 3 and len(body) > 8:  # a huge declared length somewhere in the body
        pos = rng.randrange(8, len(body))
        body[pos:pos + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xfe", b"\x80\x00\x00\x00"])
    elif kind == 4:  # unknown or unsupported api key/version
        body[0:4] = struct.pack(">hh", rng.choice([-1, 99, 1000, 32767, rng.randrange(80)]),
                                rng.choice([-1, 0, 50, 32767]))
    else:  # pure noise
        body = bytearray(rng.randbytes(rng.randint(0, 200)))
    return struct.pack(">i", len(body)) + bytes(body)


def _send(bootstrap: str, frames: list[bytes]) -> None:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), 5) as sock:
        sock.settimeout(5)
        try:
            for frame in frames:
                sock.sendall(frame)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (ConnectionError, TimeoutError, OSError):
            pass


def _stored_batches(bootstrap: str, topic: str) -> tuple[int, list[bytes]]:
    """(high watermark, every batch of partition 0) read back with Fetch."""
    batches: list[bytes] = []
    offset = 0
    with RawClient(bootstrap) as raw:
        while True:
            answer = raw.request("Fetch", 12, {
                "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": topic, "partitions": [
                    {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}]})
            part = answer.responses[0].partitions[0]
            assert part.error_code == 0, part
            data = bytes(part.records or b"")
            for pos, header in iter_batches(data, allow_partial_tail=True):
                if header.base_offset >= offset:
                    batches.append(data[pos:pos + header.size])
                    offset = header.next_offset
            if offset >= part.high_watermark:
                return part.high_watermark, batches


def test_malformed_frames_never_crash_the_broker_or_touch_stored_data(broker: BrokerProcess) -> None:
    protected = f"protected-data-{uuid.uuid4().hex}"
    sent = sample_messages(50)
    produce("confluent-kafka", broker.bootstrap, protected, sent)

    rng = random.Random(SEED)
    valid = _valid_frames("fz")
    lying = [_produce_frame("fz", 9, batch) for batch in _lying_batches()]
    started = time.monotonic()
    sent_frames = 0
    lies_sent = 0
    while sent_frames < FRAMES and time.monotonic() - started < 300:
        group = []
        for _ in range(min(rng.randint(1, 10), FRAMES - sent_frames)):
            pick = rng.random()
            if pick < 0.05:
                group.append(rng.choice(lying))
                lies_sent += 1
            elif pick < 0.8:
                group.append(_mutate(rng, rng.choice(valid + lying)))
            else:
                group.append(rng.choice(valid))
        _send(broker.bootstrap, group)
        sent_frames += len(group)
    # Oversized and negative size prefixes, which close before any body is read.
    for size in (-5, 0x7FFFFFFF, 200 * 1024 * 1024):
        _send(broker.bootstrap, [struct.pack(">i", size) + b"\x00" * 16])
    print(f"sent {sent_frames} fuzzed frames ({lies_sent} lying batches as sent) "
          f"in {time.monotonic() - started:.1f}s")
    assert sent_frames == FRAMES, f"only {sent_frames} of {FRAMES} frames sent in time"
    assert lies_sent > FRAMES // 40

    assert broker.process is not None and broker.process.poll() is None, broker.log_tail()
    got = consume("kafka-python", broker.bootstrap, protected, len(sent))
    assert [(c.key, c.value) for c in got] == [(m.key, m.value) for m in sent]
    more = sample_messages(5)
    produce("aiokafka", broker.bootstrap, protected, more)
    assert len(consume("confluent-kafka", broker.bootstrap, protected, 55)) == 55
    # What the fuzzed produce requests did store is whole: dense offsets, and records
    # that bear out every header (no lie got in, mutated or not).
    high_watermark, batches = _stored_batches(broker.bootstrap, "fz")
    assert high_watermark > 0 and batches
    offset = 0
    for batch in batches:
        header = check_batch_contents(batch)
        assert header.base_offset == offset
        offset = header.next_offset
    assert offset == high_watermark
    log = broker.log_tail(1_000_000)
    assert "Traceback" not in log, broker.log_tail(200)
    # Each refused frame leaves a line saying why.
    assert log.count("closing connection") > 100
    assert log.count("fz-0: refused produce: ") >= 9
