"""Producing and consuming through each real client, with every codec."""

from __future__ import annotations

import uuid

import pytest

from compat_tests.clients import CLIENTS, Message, consume, produce, sample_messages
from compat_tests.harness import BrokerProcess

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
    produce(client, broker.bootstrap, topic, sent, compression=codec)
    _assert_same(sent, consume(client, broker.bootstrap, topic, len(sent)))


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


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_producer_writes_each_record_once(broker: BrokerProcess, client: str) -> None:
    topic = _topic(f"idem-{client}")
    sent = sample_messages(300)
    produce(client, broker.bootstrap, topic, sent, idempotent=True)
    _assert_same(sent, consume(client, broker.bootstrap, topic, len(sent)))


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
    produce("confluent-kafka", broker.bootstrap, topic, sent)
    broker.kill()
    broker.start()
    _assert_same(sent, consume("confluent-kafka", broker.bootstrap, topic, 30))
