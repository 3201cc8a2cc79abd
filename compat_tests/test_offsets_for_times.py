"""Looking offsets up by time, and seeking to them, through each client."""

from __future__ import annotations

import asyncio
import time
import uuid

import confluent_kafka
import kafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTP

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat

BASE = 1_700_000_000_000


def _produce_timestamped(bootstrap: str, topic: str) -> None:
    """Ten records at BASE, BASE+1000, ... (explicit CreateTime timestamps)."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(10):
        producer.produce(topic, value=f"r{i}".encode(), partition=0, timestamp=BASE + i * 1000)
        # Separate batches, so lookups land on batch boundaries and inside batches alike.
        if i % 3 == 0:
            producer.flush(10)
    assert producer.flush(10) == 0


def test_kafka_python_offsets_for_times_and_seek(broker: BrokerProcess) -> None:
    topic = f"times-kp-{uuid.uuid4().hex[:6]}"
    _produce_timestamped(broker.bootstrap, topic)
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = kafka.TopicPartition(topic, 0)
    found = consumer.offsets_for_times({tp: BASE + 4500})
    assert found[tp].offset == 5 and found[tp].timestamp == BASE + 5000
    assert consumer.offsets_for_times({tp: BASE + 99_000})[tp] is None
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 10
    consumer.assign([tp])
    consumer.seek(tp, found[tp].offset)
    records = []
    deadline = time.monotonic() + 20
    while len(records) < 5 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    assert [r.value for r in records] == [f"r{i}".encode() for i in range(5, 10)]
    assert [r.timestamp for r in records] == [BASE + i * 1000 for i in range(5, 10)]
    consumer.close()


def test_confluent_offsets_for_times(broker: BrokerProcess) -> None:
    topic = f"times-ck-{uuid.uuid4().hex[:6]}"
    _produce_timestamped(broker.bootstrap, topic)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    found = consumer.offsets_for_times([confluent_kafka.TopicPartition(topic, 0, BASE + 2000)], 10)
    assert found[0].offset == 2
    low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), 10)
    assert (low, high) == (0, 10)
    consumer.close()


def test_aiokafka_offsets_for_times_and_seek_to_end(broker: BrokerProcess) -> None:
    topic = f"times-aio-{uuid.uuid4().hex[:6]}"
    _produce_timestamped(broker.bootstrap, topic)

    async def run() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            tp = AioTP(topic, 0)
            found = await consumer.offsets_for_times({tp: BASE})
            assert found[tp].offset == 0
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            assert await consumer.position(tp) == 10
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            await producer.send_and_wait(topic, b"after-end", partition=0)
            await producer.stop()
            record = await asyncio.wait_for(consumer.getone(), 20)
            assert (record.offset, record.value) == (10, b"after-end")
        finally:
            await consumer.stop()

    asyncio.run(run())
