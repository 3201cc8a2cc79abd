"""Producing and consuming through each real client, with every codec."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from broker.protocol.records import encode_batch
from compat_tests.clients import CLIENTS, Message, consume, produce, sample_messages
from compat_tests.dropping_proxy import DroppingProxy
from compat_tests.harness import BrokerProcess, free_port
from compat_tests.raw_client import LeaderRoutingClient, RawClient, leader_address

pytestmark = pytest.mark.compat

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _assert_same(sent: list[Message], got: list, first_offset: int = 0) -> None:
    assert len(got) == len(sent), f"sent {len(sent)}, consumed {len(got)}"
    for i, (m, c) in enumerate(zip(sent, got, strict=True)):
        assert c.offset == first_offset + i, f"offsets not dense at {i}: {c.offset}"
        assert (c.key, c.value) == (m.key, m.value), f"record {i} differs"
        assert tuple(c.headers) == m.headers, f"headers of record {i} differ"


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_records_round_trip_with_every_codec(broker: BrokerProcess, client: str, codec: str) -> None:
    topic = _topic(f"rt-{codec}")
    sent = sample_messages(60)
    _produce_in_flushes(client, broker.bootstrap, topic, sent, 3, compression=codec)
    _assert_same(sent, consume(client, broker.bootstrap, topic, len(sent)))
    assert _log_end(broker.bootstrap, topic) == len(sent)


@pytest.mark.parametrize(("producer", "consumer"), [
    ("confluent-kafka", "kafka-python"), ("kafka-python", "aiokafka"), ("aiokafka", "confluent-kafka"),
])
def test_records_written_by_one_client_are_read_by_another(
    broker: BrokerProcess, producer: str, consumer: str
) -> None:
    topic = _topic("cross")
    sent = sample_messages(40)
    produce(producer, broker.bootstrap, topic, sent, compression="lz4")
    _assert_same(sent, consume(consumer, broker.bootstrap, topic, len(sent)))


def test_consumer_can_start_from_any_offset_inside_a_batch(broker: BrokerProcess) -> None:
    topic = _topic("mid-batch")
    sent = sample_messages(50)
    # One producer call with linger puts many records in one batch; a fetch from the
    # middle returns the whole batch and the client skips what it did not ask for.
    produce("confluent-kafka", broker.bootstrap, topic, sent, compression="zstd")
    for client in CLIENTS:
        got = consume(client, broker.bootstrap, topic, 20, offset=30)
        _assert_same(sent[30:50], got, first_offset=30)


def _log_end(bootstrap: str, topic: str, partition: int = 0) -> int:
    """The partition's high watermark: a record stored past what was consumed shows here.
    Asked of the partition's leader, as clients do."""
    with RawClient(bootstrap) as raw:
        address = leader_address(raw, topic, partition)
    with RawClient(address) as raw:
        answer = raw.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": partition,
                                            "current_leader_epoch": -1, "timestamp": -1}]}]})
    part = answer.topics[0].partitions[0]
    assert part.error_code == 0, part
    return int(part.offset)


def _produce_in_flushes(client: str, bootstrap: str, topic: str, sent: list[Message],
                        flushes: int, **options: object) -> None:
    """Several producers one after another: several batches, so the offsets of each
    batch after the first are stamped from the log's end, not from zero."""
    size = -(-len(sent) // flushes)
    for start in range(0, len(sent), size):
        produce(client, bootstrap, topic, sent[start:start + size], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_producer_writes_each_record_once(tmp_path: Path, client: str) -> None:
    """Every second Produce answer is lost on the way back (up to four times), so the
    client sends batches the broker already wrote again: each must be stored once."""
    proxy_port = free_port()
    broker = BrokerProcess(tmp_path / "data", extra_args=["--advertise", f"127.0.0.1:{proxy_port}"])
    broker.start()
    try:
        with DroppingProxy(broker.port, port=proxy_port, drop_every=2, max_drops=4) as proxy:
            topic = _topic(f"idem-{client}")
            sent = sample_messages(300)
            _produce_in_flushes(client, f"127.0.0.1:{proxy_port}", topic, sent, 4, idempotent=True)
            assert proxy.drops >= 2, f"only {proxy.drops} answers dropped: no retry was tested"
            # Clients reach the broker only through the proxy (its advertised address).
            proxy.stop_dropping()
            _assert_same(sent, consume(client, broker.bootstrap, topic, len(sent)))
            assert _log_end(broker.bootstrap, topic) == len(sent)
            resent_batch_is_stored_once(broker.bootstrap, client)
    finally:
        broker.stop()


def resent_batch_is_stored_once(bootstrap: str, client: str) -> None:
    """A real idempotent producer writes, then the same batch of one producer id is sent
    twice, as a client does when an answer is lost: both sends are answered with the
    same offsets and the log grows once."""
    topic = _topic(f"resend-{client}")
    sent = sample_messages(50)
    _produce_in_flushes(client, bootstrap, topic, sent, 2, idempotent=True)
    records = [(f"k{i}".encode(), f"again-{i}".encode()) for i in range(10)]
    with LeaderRoutingClient(bootstrap) as raw:
        init = raw.request("InitProducerId", 4, {"transactional_id": None,
                                                 "transaction_timeout_ms": 60000})
        assert init.error_code == 0
        batch = encode_batch(records, producer_id=init.producer_id,
                             producer_epoch=init.producer_epoch, base_sequence=0)
        answers = []
        for _ in range(2):
            answer = raw.request("Produce", 9, {
                "transactional_id": None, "acks": -1, "timeout_ms": 10000,
                "topic_data": [{"name": topic, "partition_data": [
                    {"index": 0, "records": batch}]}]})
            answers.append(answer.responses[0].partition_responses[0])
    assert [a.error_code for a in answers] == [0, 0]
    assert answers[0].base_offset == answers[1].base_offset == len(sent)
    assert _log_end(bootstrap, topic) == len(sent) + len(records)
    got = consume(client, bootstrap, topic, len(sent) + len(records))
    assert [c.value for c in got[len(sent):]] == [v for _, v in records]


def test_data_survives_a_broker_restart(broker: BrokerProcess) -> None:
    topic = _topic("restart")
    first = sample_messages(30)
    produce("confluent-kafka", broker.bootstrap, topic, first)
    broker.restart()
    second = sample_messages(20)
    produce("kafka-python", broker.bootstrap, topic, second)
    _assert_same(first + second, consume("aiokafka", broker.bootstrap, topic, 50))


def test_data_survives_kill_9(broker: BrokerProcess) -> None:
    topic = _topic("kill")
    sent = sample_messages(30)
    _produce_in_flushes("confluent-kafka", broker.bootstrap, topic, sent, 3)
    broker.kill()
    broker.start()
    _assert_same(sent, consume("confluent-kafka", broker.bootstrap, topic, 30))
    assert _log_end(broker.bootstrap, topic) == len(sent)
