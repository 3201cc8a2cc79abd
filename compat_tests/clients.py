"""The same produce and consume steps through each real client, so tests can run one
scenario across kafka-python, aiokafka and confluent-kafka."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass

import confluent_kafka
import kafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTopicPartition

# librdkafka can deadlock in a consumer's close() when a broker went away while an
# OffsetForLeaderEpoch request to it was in flight: two of its threads take the handle's
# lock and a partition's lock in opposite orders (confluentinc/librdkafka#5476, open).
# Fault tests kill brokers, so they close consumers through close_consumer.
CLOSE_WAIT_S = 30.0


def close_consumer(consumer: confluent_kafka.Consumer, timeout_s: float = CLOSE_WAIT_S) -> bool:
    """Close a confluent-kafka consumer, giving up after `timeout_s`; whether it closed.
    One left closing stays referenced by its closing thread, so it is never destroyed
    (destroying it would wait on the same lock) and the test goes on."""
    outcome: list[BaseException | None] = []

    def close() -> None:
        try:
            consumer.close()
            outcome.append(None)
        except BaseException as exc:  # re-raised on the caller's thread
            outcome.append(exc)

    closing = threading.Thread(target=close, name="consumer-close", daemon=True)
    closing.start()
    closing.join(timeout_s)
    if not outcome:
        print(f"consumer close() did not return within {timeout_s:.0f} s: the librdkafka "
              "deadlock of confluentinc/librdkafka#5476 (its threads wait on each other's "
              "locks, no request is outstanding); left closing")
        return False
    if outcome[0] is not None:
        raise outcome[0]
    return True


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


CLIENTS = ("kafka-python", "aiokafka", "confluent-kafka")


def sample_messages(count: int) -> list[Message]:
    """Keys, headers, null values and empty values, mixed."""
    out = []
    for i in range(count):
        key = None if i % 5 == 0 else f"key-{i}".encode()
        if i % 7 == 3 and key is not None:
            # A record needs a key or a value (kafka-python insists).
            value = None
        elif i % 7 == 4:
            value = b""
        else:
            value = f"value-{i}-".encode() * (1 + i % 13)
        headers = (("h", f"{i}".encode()), ("empty", b"")) if i % 3 == 0 else ()
        out.append(Message(key, value, headers))
    return out


def produce(client: str, bootstrap: str, topic: str, messages: list[Message], *,
            partition: int = 0, compression: str = "none", idempotent: bool = False) -> None:
    if client == "kafka-python":
        producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if compression == "none" else compression,
            enable_idempotence=idempotent,
            acks="all",
            linger_ms=5,
        )
        futures = [
            producer.send(topic, key=m.key, value=m.value, headers=list(m.headers), partition=partition)
            for m in messages
        ]
        producer.flush(30)
        for f in futures:
            f.get(30)
        producer.close(10)
    elif client == "aiokafka":
        async def run() -> None:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                compression_type=None if compression == "none" else compression,
                enable_idempotence=idempotent,
                acks="all",
                linger_ms=5,
            )
            await producer.start()
            try:
                futures = [
                    await producer.send(topic, key=m.key, value=m.value,
                                        headers=list(m.headers), partition=partition)
                    for m in messages
                ]
                await asyncio.gather(*futures)
            finally:
                await producer.stop()
        asyncio.run(run())
    elif client == "confluent-kafka":
        producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap,
            "compression.type": compression,
            "enable.idempotence": idempotent,
            "acks": "all",
            "linger.ms": 5,
        })
        errors: list[object] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        for m in messages:
            producer.produce(topic, key=m.key, value=m.value, headers=list(m.headers) or None,
                             partition=partition, on_delivery=on_delivery)
            producer.poll(0)
        remaining = producer.flush(30)
        assert remaining == 0 and not errors, (remaining, errors[:3])
    else:
        raise ValueError(client)


def consume(client: str, bootstrap: str, topic: str, count: int, *, partition: int = 0,
            offset: int = 0, timeout: float = 30.0) -> list[Consumed]:
    """Read `count` records of one partition from `offset`, without a group."""
    deadline = time.monotonic() + timeout
    out: list[Consumed] = []
    if client == "kafka-python":
        consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                       group_id=None)
        tp = kafka.TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(
                    Consumed(r.partition, r.offset, r.key, r.value,
                             tuple((k, v) for k, v in r.headers), r.timestamp)
                    for r in records
                )
        consumer.close()
    elif client == "aiokafka":
        async def run() -> None:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                tp = AioTopicPartition(topic, partition)
                consumer.assign([tp])
                consumer.seek(tp, offset)
                while len(out) < count and time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        out.extend(
                            Consumed(r.partition, r.offset, r.key, r.value,
                                     tuple((k, v) for k, v in r.headers), r.timestamp)
                            for r in records
                        )
            finally:
                await consumer.stop()
        asyncio.run(run())
    elif client == "confluent-kafka":
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        })
        consumer.assign([confluent_kafka.TopicPartition(topic, partition, offset)])
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=min(1000, count - len(out)), timeout=0.5):
                if msg.error() is not None:
                    raise AssertionError(f"consume error: {msg.error()}")
                out.append(Consumed(msg.partition(), msg.offset(), msg.key(), msg.value(),
                                    tuple(msg.headers() or ()), msg.timestamp()[1]))
        consumer.close()
    else:
        raise ValueError(client)
    return out
