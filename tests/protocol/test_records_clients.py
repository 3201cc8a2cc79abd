"""Batches written by real Kafka clients decode here and pass the produce check, and
ours decode in theirs.

kafka-python's and aiokafka's batch builders cover every codec (with the lz4, zstandard
and python-snappy test extras). For every codec, librdkafka (through
confluent-kafka) produces into its built-in mock cluster, which stores batches as the
client framed them; a minimal Fetch v4 exchange brings those bytes back unchanged.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import confluent_kafka
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBatchBuilder
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from broker.protocol.records import (
    Compression,
    Header,
    Record,
    check_batch_contents,
    decode_records,
    encode_batch,
    iter_batches,
    validate_batch,
)

pytestmark = pytest.mark.unit

BASE_TIMESTAMP = 1_700_000_000_000
MESSAGES = [
    (b"key-0", b"value-0", [("trace", b"abc")], 0),
    (None, b"", [], 5),
    (b"", None, [("empty", b""), ("null", None)], 2),
    (b"k" * 300, b"\x00\xff" * 2000, [("\u00e9t\u00e9", b"\x01")], 900),
]


def kafka_python_batch(codec: Compression, **producer: int | bool) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=producer.get("is_transactional", False),
        producer_id=producer.get("producer_id", -1),
        producer_epoch=producer.get("producer_epoch", -1),
        base_sequence=producer.get("base_sequence", -1),
        batch_size=1 << 20,
    )
    for offset, (key, value, headers, delta) in enumerate(MESSAGES):
        assert builder.append(offset, BASE_TIMESTAMP + delta, key, value, headers) is not None
    return bytes(builder.build())


def expected_records() -> list[Record]:
    return [
        Record(offset, delta, key, value, [Header(k, v) for k, v in headers])
        for offset, (key, value, headers, delta) in enumerate(MESSAGES)
    ]


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.GZIP])
def test_kafka_python_batches_decode(codec: Compression) -> None:
    batch = kafka_python_batch(codec)
    header = validate_batch(batch)
    assert header.compression is codec
    assert header.records_count == len(MESSAGES)
    assert header.base_timestamp == BASE_TIMESTAMP
    assert header.max_timestamp == BASE_TIMESTAMP + 900
    _, records = decode_records(batch)
    assert records == expected_records()


@pytest.mark.parametrize("codec", list(Compression))
def test_kafka_python_batches_pass_the_produce_check(codec: Compression) -> None:
    assert check_batch_contents(kafka_python_batch(codec)).records_count == len(MESSAGES)


@pytest.mark.parametrize("codec", list(Compression))
def test_aiokafka_batches_pass_the_produce_check(codec: Compression) -> None:
    # aiokafka builds batches with its own (Cython) writer, not kafka-python's.
    builder = AioBatchBuilder(magic=2, compression_type=int(codec), is_transactional=False,
                              producer_id=-1, producer_epoch=-1, base_sequence=-1,
                              batch_size=1 << 20)
    for offset, (key, value, headers, delta) in enumerate(MESSAGES):
        assert builder.append(offset, timestamp=BASE_TIMESTAMP + delta, key=key, value=value,
                              headers=headers) is not None
    batch = bytes(builder.build())
    assert check_batch_contents(batch).records_count == len(MESSAGES)
    assert decode_records(batch)[1] == expected_records()


def test_kafka_python_idempotent_transactional_batch() -> None:
    batch = kafka_python_batch(
        Compression.NONE,
        producer_id=4000,
        producer_epoch=7,
        base_sequence=30,
        is_transactional=True,
    )
    header = validate_batch(batch)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4000, 7, 30)
    assert header.last_sequence == 33
    assert header.is_transactional


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.GZIP])
def test_our_batches_decode_in_kafka_python(codec: Compression) -> None:
    batch = encode_batch(
        expected_records(),
        base_offset=100,
        base_timestamp=BASE_TIMESTAMP,
        compression=codec,
        producer_id=9,
        producer_epoch=1,
        base_sequence=0,
    )
    theirs = DefaultRecordBatch(batch)
    assert theirs.validate_crc()
    assert theirs.base_offset == 100 and theirs.producer_id == 9
    assert theirs.max_timestamp == BASE_TIMESTAMP + 900
    decoded = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in theirs]
    assert decoded == [
        (100 + i, BASE_TIMESTAMP + delta, key, value, list(headers))
        for i, (key, value, headers, delta) in enumerate(MESSAGES)
    ]


def fetch_raw(host: str, port: int, topic: str, offset: int) -> bytes:
    """Fetch v4 from partition 0 at ``offset``; returns the records field as sent."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 1000, 1, 16 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, offset, 16 << 20)
    client = b"walrus-test"
    request = struct.pack(">hhih", 1, 4, 1, len(client)) + client + body
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", recv_exactly(sock, 4))
        response = recv_exactly(sock, size)
    pos = 4 + 4  # correlation id, throttle time
    (topics,) = struct.unpack_from(">i", response, pos)
    assert topics == 1
    (name_length,) = struct.unpack_from(">h", response, pos + 4)
    pos += 6 + name_length
    partition_count, partition, error = struct.unpack_from(">iih", response, pos)
    assert (partition_count, partition, error) == (1, 0, 0)
    pos += 10 + 16  # high watermark, last stable offset
    (aborted,) = struct.unpack_from(">i", response, pos)
    pos += 4 + 16 * max(aborted, 0)
    (length,) = struct.unpack_from(">i", response, pos)
    return response[pos + 4 : pos + 4 + length]


def read_log(host: str, port: int, topic: str, messages: int) -> bytes:
    """The partition's log from offset 0 on; the mock answers one batch per fetch."""
    log = b""
    offset = 0
    while offset < messages:
        chunk = fetch_raw(host, port, topic, offset)
        assert chunk, f"no data at offset {offset}"
        # Read the next offset straight from the header fields, independently of the code under test.
        base_offset, _, _, _, _, _, last_offset_delta = struct.unpack_from(">qiibIhi", chunk)
        assert base_offset == offset
        first_batch_size = struct.unpack_from(">i", chunk, 8)[0] + 12
        log += chunk[:first_batch_size]
        offset = base_offset + last_offset_delta + 1
    return log


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("mock cluster closed the connection")
        data += chunk
    return bytes(data)


CODEC_NAMES = {
    Compression.NONE: "none",
    Compression.GZIP: "gzip",
    Compression.SNAPPY: "snappy",
    Compression.LZ4: "lz4",
    Compression.ZSTD: "zstd",
}


@pytest.fixture(scope="module")
def librdkafka_logs() -> Iterator[dict[Compression, tuple[bytes, int]]]:
    """Per codec: the raw log of a topic librdkafka produced to, and how many messages."""
    logs: dict[Compression, tuple[bytes, int]] = {}
    keepalive = []
    for codec, name in CODEC_NAMES.items():
        producer = confluent_kafka.Producer(
            {
                "test.mock.num.brokers": 1,
                "compression.type": name,
                "linger.ms": 50,
                "enable.idempotence": True,
                "log_level": 3,
            }
        )
        keepalive.append(producer)
        topic = f"records-{name}"
        rounds = 3
        for round_number in range(rounds):
            for key, value, headers, delta in MESSAGES:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=headers,
                    partition=0,
                    timestamp=BASE_TIMESTAMP + delta + round_number,
                )
            assert producer.flush(10) == 0
        broker = next(iter(producer.list_topics(timeout=10).brokers.values()))
        expected = rounds * len(MESSAGES)
        logs[codec] = (read_log(broker.host, broker.port, topic, expected), expected)
    yield logs
    keepalive.clear()


@pytest.mark.parametrize("codec", list(CODEC_NAMES))
def test_librdkafka_batches_decode(
    codec: Compression, librdkafka_logs: dict[Compression, tuple[bytes, int]]
) -> None:
    raw, expected_count = librdkafka_logs[codec]
    decoded: list[tuple[int, Record]] = []
    next_offset = 0
    for pos, header in iter_batches(raw):
        assert header.compression is codec
        assert header.has_producer_id and header.base_sequence == next_offset
        assert header.base_offset == next_offset
        _, records = decode_records(raw, pos)
        decoded += [(header.base_timestamp, record) for record in records]
        next_offset = header.next_offset
    assert len(decoded) == expected_count
    for index, (base_timestamp, record) in enumerate(decoded):
        key, value, headers, delta = MESSAGES[index % len(MESSAGES)]
        assert (record.key, record.value) == (key, value)
        assert [(h.key, h.value) for h in record.headers] == headers
        assert base_timestamp + record.timestamp_delta == BASE_TIMESTAMP + delta + index // len(
            MESSAGES
        )


@pytest.mark.parametrize("codec", list(CODEC_NAMES))
def test_librdkafka_batches_pass_the_produce_check(
    codec: Compression, librdkafka_logs: dict[Compression, tuple[bytes, int]]
) -> None:
    raw, expected_count = librdkafka_logs[codec]
    checked = [check_batch_contents(raw, pos).records_count for pos, _ in iter_batches(raw)]
    assert sum(checked) == expected_count
