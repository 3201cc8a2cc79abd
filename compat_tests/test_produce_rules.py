"""Produce rules at the protocol level, with exact bytes: idempotent sequences, bad
CRCs, oversized batches, acks=0 and the versions a client can negotiate."""

from __future__ import annotations

import struct
import time
import uuid

import pytest

from broker.protocol import decode_response, encode_request
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch, iter_batches
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

pytestmark = pytest.mark.compat

PRODUCE_V = 9


def _create(client: RawClient, topic: str) -> None:
    md = client.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
    assert md.topics[0].error_code == 0


def _produce(client: RawClient, topic: str, records: bytes, acks: int = -1) -> tuple[int, int]:
    response = client.request("Produce", PRODUCE_V, {
        "acks": acks, "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    })
    part = response.responses[0].partition_responses[0]
    return part.error_code, part.base_offset


def _batch(n: int, *, pid: int = -1, epoch: int = -1, seq: int = -1) -> bytes:
    return encode_batch(
        [Record(i, 0, None, f"v{i}".encode(), []) for i in range(n)],
        producer_id=pid, producer_epoch=epoch, base_sequence=seq,
        base_timestamp=int(time.time() * 1000),
    )


def _producer_id(client: RawClient) -> int:
    answer = client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000})
    assert answer.error_code == 0
    return int(answer.producer_id)


@pytest.fixture
def raw(broker: BrokerProcess):
    with RawClient(broker.bootstrap) as client:
        yield client


def test_retried_batch_is_answered_with_its_original_offset(raw: RawClient) -> None:
    topic = f"dup-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    pid = _producer_id(raw)
    assert _produce(raw, topic, _batch(3, pid=pid, epoch=0, seq=0)) == (0, 0)
    assert _produce(raw, topic, _batch(2, pid=pid, epoch=0, seq=3)) == (0, 3)
    # The same first batch again: a retry. It is not written twice.
    assert _produce(raw, topic, _batch(3, pid=pid, epoch=0, seq=0)) == (0, 0)
    assert _produce(raw, topic, _batch(1, pid=pid, epoch=0, seq=5)) == (0, 5)


def test_sequence_gap_is_out_of_order_and_writes_nothing(raw: RawClient) -> None:
    topic = f"gap-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    pid = _producer_id(raw)
    assert _produce(raw, topic, _batch(2, pid=pid, epoch=0, seq=0))[0] == 0
    code, _ = _produce(raw, topic, _batch(2, pid=pid, epoch=0, seq=5))
    assert code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert _produce(raw, topic, _batch(1, pid=pid, epoch=0, seq=2)) == (0, 2)


def test_producer_ids_are_unique_and_a_stale_epoch_is_fenced(raw: RawClient) -> None:
    topic = f"epoch-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    ids = {_producer_id(raw) for _ in range(5)}
    assert len(ids) == 5
    pid = ids.pop()
    assert _produce(raw, topic, _batch(1, pid=pid, epoch=3, seq=0))[0] == 0
    code, _ = _produce(raw, topic, _batch(1, pid=pid, epoch=2, seq=1))
    assert code == ErrorCode.INVALID_PRODUCER_EPOCH


def test_bad_crc_is_corrupt_message_and_the_log_is_untouched(raw: RawClient) -> None:
    topic = f"crc-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    assert _produce(raw, topic, _batch(2)) == (0, 0)
    damaged = bytearray(_batch(2))
    damaged[-1] ^= 0xFF
    code, _ = _produce(raw, topic, bytes(damaged))
    assert code == ErrorCode.CORRUPT_MESSAGE
    assert _produce(raw, topic, _batch(1)) == (0, 2)


def test_legacy_message_set_is_refused(raw: RawClient) -> None:
    topic = f"legacy-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    # A magic-1 message set: offset, size, crc, magic=1, attributes, timestamp, key, value.
    body = struct.pack(">bbq", 1, 0, 0) + struct.pack(">i", -1) + struct.pack(">i", 1) + b"x"
    message = struct.pack(">I", 0) + body
    legacy = struct.pack(">qi", 0, len(message)) + message
    code, _ = _produce(raw, topic, legacy)
    assert code in (ErrorCode.INVALID_RECORD, ErrorCode.CORRUPT_MESSAGE)


def test_batch_over_max_message_bytes_is_refused(raw: RawClient) -> None:
    topic = f"big-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    big = encode_batch([Record(0, 0, None, b"x" * (2 << 20), [])])
    code, _ = _produce(raw, topic, big)
    assert code == ErrorCode.MESSAGE_TOO_LARGE


def test_acks_zero_gets_no_response_but_is_written(raw: RawClient, broker: BrokerProcess) -> None:
    topic = f"acks0-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    raw.send_frame(encode_request(0, PRODUCE_V, 999, "raw", {
        "acks": 0, "timeout_ms": 1000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": _batch(4)}]}],
    }))
    # The next answer on this connection is for the next request, not the acks=0 one.
    md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    assert md.topics[0].error_code == 0
    listed = raw.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
    assert listed.topics[0].partitions[0].offset == 4


def test_fetch_returns_whole_batches_from_the_one_holding_the_offset(raw: RawClient) -> None:
    topic = f"fetch-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    for n in (3, 4, 5):
        assert _produce(raw, topic, _batch(n))[0] == 0
    answer = raw.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": 5, "partition_max_bytes": 1 << 20}]}],
    })
    part = answer.responses[0].partitions[0]
    assert part.error_code == 0 and part.high_watermark == 12
    bases = [h.base_offset for _, h in iter_batches(part.records)]
    assert bases == [3, 7]


def test_fetch_waits_for_data_until_max_wait(raw: RawClient, broker: BrokerProcess) -> None:
    topic = f"wait-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    started = time.monotonic()
    answer = raw.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 400, "min_bytes": 1, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
    })
    waited = time.monotonic() - started
    assert 0.35 <= waited < 5
    assert not answer.responses[0].partitions[0].records


def test_fetch_out_of_range_reports_the_log_bounds(raw: RawClient) -> None:
    topic = f"oor-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    _produce(raw, topic, _batch(2))
    answer = raw.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": 50, "partition_max_bytes": 1 << 20}]}],
    })
    part = answer.responses[0].partitions[0]
    assert part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert part.high_watermark == 2 and part.log_start_offset == 0


def test_unsupported_api_versions_version_gets_the_kip511_answer(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as raw:
        # ApiVersions v99: header v2 (flexible), body unknown to the broker.
        header = struct.pack(">hhi", 18, 99, 77) + struct.pack(">h", 3) + b"cli" + b"\x00"
        frame = header + b"\x00\x00"
        raw.send_frame(struct.pack(">i", len(frame)) + frame)
        correlation, body = decode_response(18, 0, raw.read_frame())
        assert correlation == 77
        assert body.error_code == ErrorCode.UNSUPPORTED_VERSION
        served = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
        assert served[18][0] == 0 and served[0][1] >= 9


def test_a_fetch_error_still_carries_an_empty_record_set(raw: RawClient) -> None:
    # librdkafka rejects a null record set (size -1) even beside an error code.
    topic = f"empty-{uuid.uuid4().hex[:6]}"
    _create(raw, topic)
    answer = raw.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "fetch_offset": 99, "partition_max_bytes": 1 << 20}]}],
    })
    part = answer.responses[0].partitions[0]
    assert part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert part.records is not None and len(part.records) == 0
