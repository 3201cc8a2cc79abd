"""Produced batches whose records do not bear out their header, against a real broker:
each is refused with Kafka's error code, nothing of it is stored, and the partition
stays whole: a real client's next record lands at the next dense offset and reads
back, and ListOffsets by timestamp answers.

The bad batches are built with the project's builder and given a lying header or
section with a recomputed CRC, so it is the lie, not the CRC, that has to be caught.
Each case here was stored by the broker before it checked records (project issue 11).
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import kafka
import pytest

from broker.protocol.errors import ErrorCode
from broker.protocol.records import (
    Compression,
    Record,
    compress,
    encode_batch,
    reframe_batch,
)
from compat_tests.clients import consume
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

pytestmark = pytest.mark.compat

PRODUCE_V = 9
T0 = 1_700_000_000_000
# The lies carry timestamps between the good records', where a lookup by time reads them.
LIE_TIME = T0 + 100
AFTER_TIME = T0 + 1000


def _values(count: int, prefix: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(None, f"{prefix}-{i}".encode()) for i in range(count)]


def _gzip_bomb() -> bytes:
    """1 GiB of zeros in about 1 MB of gzip (level 9), written a mebibyte at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    return b"".join(packer.compress(chunk) for _ in range(1024)) + packer.flush()


def _honest(count: int, codec: Compression = Compression.NONE) -> bytes:
    return encode_batch(_values(count, "lie"), compression=codec, base_timestamp=LIE_TIME)


LIES: dict[str, tuple[Callable[[], bytes], ErrorCode]] = {
    # Consumers looped on its decompression error; ListOffsets by time closed the connection.
    "random bytes flagged gzip": (
        lambda: reframe_batch(_honest(1), compression=Compression.GZIP,
                              section=random.Random(11).randbytes(300)),
        ErrorCode.CORRUPT_MESSAGE),
    # A consumer saw offsets 0,1,3,4,5,5 after such batches.
    "uncompressed, count above its records": (
        lambda: reframe_batch(_honest(3), records_count=4, last_offset_delta=3),
        ErrorCode.INVALID_RECORD),
    "uncompressed, count below its records": (
        lambda: reframe_batch(_honest(3), records_count=2, last_offset_delta=1),
        ErrorCode.INVALID_RECORD),
    "uncompressed, an offset delta repeated": (
        lambda: reframe_batch(encode_batch([Record(d, 0, None, b"dup") for d in (0, 1, 1)],
                                           base_timestamp=LIE_TIME), last_offset_delta=2),
        ErrorCode.INVALID_RECORD),
    # Moved the log end to 2,001,000,001.
    "gzip, one record claiming two billion": (
        lambda: reframe_batch(_honest(1, Compression.GZIP), records_count=2_000_000_000,
                              last_offset_delta=1_999_999_999),
        ErrorCode.INVALID_RECORD),
    # Stored and handed to consumers.
    "gzip bomb, 1 GiB in 1 MB": (
        lambda: reframe_batch(_honest(1), compression=Compression.GZIP, section=_gzip_bomb()),
        ErrorCode.CORRUPT_MESSAGE),
    "zstd bomb, 1 GiB in 32 KB": (
        lambda: reframe_batch(_honest(1), compression=Compression.ZSTD,
                              section=compress(Compression.ZSTD, bytes(1 << 30))),
        ErrorCode.CORRUPT_MESSAGE),
    "lz4, count above its records": (
        lambda: reframe_batch(_honest(3, Compression.LZ4), records_count=4, last_offset_delta=3),
        ErrorCode.INVALID_RECORD),
    "no records": (lambda: encode_batch([], base_timestamp=LIE_TIME), ErrorCode.INVALID_RECORD),
}


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the module: every test writes its own topic."""
    process = BrokerProcess(Path(tmp_path_factory.mktemp("validation")) / "data").start()
    try:
        yield process
    finally:
        process.stop()


def _produce(raw: RawClient, topic: str, records: bytes, partition: int = 0) -> tuple[int, int, str | None]:
    response = raw.request("Produce", PRODUCE_V, {
        "acks": -1, "timeout_ms": 10_000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}],
    })
    part = response.responses[0].partition_responses[0]
    return part.error_code, part.base_offset, part.error_message


def _offset_for_time(raw: RawClient, topic: str, timestamp: int) -> tuple[int, int]:
    answer = raw.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}]})
    part = answer.topics[0].partitions[0]
    return part.error_code, part.offset


def _produce_with_kafka_python(bootstrap: str, topic: str, value: bytes, timestamp_ms: int) -> int:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        return int(producer.send(topic, value=value, partition=0,
                                 timestamp_ms=timestamp_ms).get(30).offset)
    finally:
        producer.close(10)


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_batch_is_refused_and_the_partition_stays_whole(
    shared_broker: BrokerProcess, lie: str
) -> None:
    build, code = LIES[lie]
    topic = f"lie-{uuid.uuid4().hex[:8]}"
    with RawClient(shared_broker.bootstrap, timeout=60) as raw:
        assert raw.request("Metadata", 12, {"topics": [{"name": topic}],
                                            "allow_auto_topic_creation": True}).topics[0].error_code == 0
        before = [Record(i, i * 10, None, f"before-{i}".encode()) for i in range(2)]
        assert _produce(raw, topic, encode_batch(before, base_timestamp=T0))[:2] == (0, 0)

        error, _, message = _produce(raw, topic, build())
        assert ErrorCode(error) == code, message
        assert message, "a refusal says why"

        # The partition is untouched: the log end did not move and lookups by time work.
        assert _offset_for_time(raw, topic, -1) == (0, 2)
        assert _offset_for_time(raw, topic, T0) == (0, 0)
        assert _offset_for_time(raw, topic, LIE_TIME) == (0, -1)

    # A real client's next record lands at the next dense offset and reads back.
    assert _produce_with_kafka_python(shared_broker.bootstrap, topic, b"after", AFTER_TIME) == 2
    got = consume("confluent-kafka", shared_broker.bootstrap, topic, 3, timeout=20)
    assert [(c.offset, c.value) for c in got] == [(0, b"before-0"), (1, b"before-1"), (2, b"after")]
    with RawClient(shared_broker.bootstrap) as raw:
        assert _offset_for_time(raw, topic, LIE_TIME) == (0, 2)
    consumer = kafka.KafkaConsumer(bootstrap_servers=shared_broker.bootstrap, group_id=None)
    try:
        tp = kafka.TopicPartition(topic, 0)
        found = consumer.offsets_for_times({tp: T0 + 1})
        assert found[tp] is not None and (found[tp].offset, found[tp].timestamp) == (1, T0 + 10)
    finally:
        consumer.close()

    log = shared_broker.log_tail(100_000)
    assert f"{topic}-0: refused produce: " in log
    assert "Traceback" not in log


def test_a_lie_in_one_partition_leaves_the_others_of_the_request_written(
    shared_broker: BrokerProcess,
) -> None:
    topic = f"mixed-{uuid.uuid4().hex[:8]}"
    with RawClient(shared_broker.bootstrap) as raw:
        created = raw.request("CreateTopics", 5, {"topics": [{
            "name": topic, "num_partitions": 3, "replication_factor": 1, "assignments": [],
            "configs": []}], "timeout_ms": 10_000, "validate_only": False})
        assert created.topics[0].error_code == 0
        lying = reframe_batch(_honest(3), records_count=4, last_offset_delta=3)
        response = raw.request("Produce", PRODUCE_V, {
            "acks": -1, "timeout_ms": 10_000,
            "topic_data": [{"name": topic, "partition_data": [
                {"index": 0, "records": encode_batch(_values(2, "p0"))},
                {"index": 1, "records": lying},
                {"index": 2, "records": encode_batch(_values(3, "p2"))},
            ]}],
        })
        answers = {p.index: (p.error_code, p.base_offset)
                   for p in response.responses[0].partition_responses}
        assert answers == {0: (0, 0), 1: (ErrorCode.INVALID_RECORD, -1), 2: (0, 0)}
    assert [c.value for c in consume("kafka-python", shared_broker.bootstrap, topic, 3,
                                     partition=2, timeout=20)] == [b"p2-0", b"p2-1", b"p2-2"]


def test_a_topic_name_with_a_trailing_newline_is_refused(shared_broker: BrokerProcess) -> None:
    name = f"nl-{uuid.uuid4().hex[:6]}\n"
    with RawClient(shared_broker.bootstrap) as raw:
        created = raw.request("CreateTopics", 5, {"topics": [{
            "name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [],
            "configs": []}], "timeout_ms": 10_000, "validate_only": False})
        assert created.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        auto = raw.request("Metadata", 12, {"topics": [{"name": name}],
                                            "allow_auto_topic_creation": True})
        assert auto.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        listed = raw.request("Metadata", 12, {"topics": None, "allow_auto_topic_creation": False})
        assert name not in {t.name for t in listed.topics}
        assert name.rstrip("\n") not in {t.name for t in listed.topics}
