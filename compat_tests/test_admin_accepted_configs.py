"""Topic configs clients commonly set that Walrus accepts without acting on them."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat


def test_compression_type_and_message_format_version_are_accepted(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = f"cfg-{uuid.uuid4().hex[:6]}"
    configs = {"compression.type": "gzip", "message.format.version": "2.8"}
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=configs)]).values():
        future.result(20)
    described = admin.describe_configs([ConfigResource("topic", topic)])
    entries = next(iter(described.values())).result(20)
    assert entries["compression.type"].value == "gzip"
    bad = admin.create_topics([NewTopic(f"{topic}-bad", 1, 1, config={"compression.type": "brotli"})])
    with pytest.raises(Exception, match=r"INVALID_CONFIG|compression\.type"):
        next(iter(bad.values())).result(20)
