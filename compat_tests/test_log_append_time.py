"""LogAppendTime topics: the broker's clock replaces the producer's timestamps."""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from compat_tests.clients import CLIENTS, consume
from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat


@pytest.mark.parametrize("client", CLIENTS)
def test_log_append_time_topic_stamps_the_broker_time(broker: BrokerProcess, client: str) -> None:
    topic = f"lat-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(
        topic, 1, 1, config={"message.timestamp.type": "LogAppendTime"})]).values():
        future.result(20)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    long_ago = 1_000_000_000_000  # 2001: far from now
    before = int(time.time() * 1000)
    for i in range(5):
        producer.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=long_ago + i)
    assert producer.flush(10) == 0
    after = int(time.time() * 1000)
    got = consume(client, broker.bootstrap, topic, 5)
    assert [c.value for c in got] == [f"v{i}".encode() for i in range(5)]
    for c in got:
        assert before - 1000 <= c.timestamp <= after + 1000, (c.timestamp, before, after)
