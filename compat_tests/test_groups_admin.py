"""Group administration through each client's admin API: listing (with a state
filter), describing, deleting groups and their offsets; commit metadata strings that
come back as they were sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import kafka
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka.admin import AdminClient
from kafka.structs import OffsetAndMetadata

from compat_tests.harness import BrokerProcess
from compat_tests.test_groups_support import (
    Ledger,
    MemberSpec,
    ThreadedMember,
    create_topic,
    group_broker,
    new_member,
    wait_for,
)

pytestmark = pytest.mark.compat

# Commit metadata as applications use it: empty, plain, JSON, non-ASCII.
METADATA = ["", "checkpoint-7", '{"host": "worker-3", "batch": 12}', "größe ✓ 東京"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with group_broker(tmp_path) as process:
        yield process


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _stable_member(broker: BrokerProcess, topic: str, group: str) -> ThreadedMember:
    """A kafka-python member that has joined `group` and holds its assignment."""
    member = new_member("kafka-python", MemberSpec(broker.bootstrap, topic, group, Ledger()), name="admin-probe")
    member.start()
    wait_for(lambda: member.assignments > 0, "the member to be assigned partitions")
    return member


def _kafka_python_admin(broker: BrokerProcess) -> kafka.KafkaAdminClient:
    return kafka.KafkaAdminClient(bootstrap_servers=broker.bootstrap)


# ------------------------------------------------------------------ commit metadata


def test_commit_metadata_round_trips_through_kafka_python(broker: BrokerProcess) -> None:
    topic, group = _unique("meta-kp"), _unique("g")
    create_topic(broker.bootstrap, topic, len(METADATA))
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [kafka.TopicPartition(topic, p) for p in range(len(METADATA))]
        consumer.assign(tps)
        consumer.commit({tp: OffsetAndMetadata(10 + tp.partition, METADATA[tp.partition], -1) for tp in tps})
        for tp in tps:
            committed = consumer.committed(tp, metadata=True)
            assert (committed.offset, committed.metadata) == (10 + tp.partition, METADATA[tp.partition])
    finally:
        consumer.close(autocommit=False)


def test_commit_metadata_round_trips_through_aiokafka(broker: BrokerProcess) -> None:
    topic, group = _unique("meta-aio"), _unique("g")
    create_topic(broker.bootstrap, topic, len(METADATA))

    async def run() -> dict[AioTopicPartition, object]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            tps = [AioTopicPartition(topic, p) for p in range(len(METADATA))]
            consumer.assign(tps)
            await consumer.commit({tp: (20 + tp.partition, METADATA[tp.partition]) for tp in tps})
            assert await consumer.committed(tps[1]) == 21
            return await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
            await consumer.stop()

    offsets = asyncio.run(run())
    got = {tp.partition: (om.offset, om.metadata) for tp, om in offsets.items()}  # type: ignore[attr-defined]
    assert got == {p: (20 + p, m) for p, m in enumerate(METADATA)}


def test_commit_metadata_round_trips_through_confluent_kafka(broker: BrokerProcess) -> None:
    topic, group = _unique("meta-ck"), _unique("g")
    create_topic(broker.bootstrap, topic, len(METADATA))
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        tps = [
            confluent_kafka.TopicPartition(topic, p, 30 + p, metadata=m) for p, m in enumerate(METADATA)
        ]
        consumer.commit(offsets=tps, asynchronous=False)
        committed = consumer.committed([confluent_kafka.TopicPartition(topic, p) for p in range(len(METADATA))], timeout=10)
        got = {tp.partition: (tp.offset, tp.metadata or "") for tp in committed}
        assert got == {p: (30 + p, m) for p, m in enumerate(METADATA)}
    finally:
        consumer.close()


# ------------------------------------------------------------------ list, describe, delete


def test_kafka_python_admin_lists_describes_and_deletes_groups(broker: BrokerProcess) -> None:
    topic, group = _unique("adm-kp"), _unique("g")
    create_topic(broker.bootstrap, topic, 3)
    admin = _kafka_python_admin(broker)
    member = _stable_member(broker, topic, group)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[group]["protocol_type"] == "consumer"
        assert listed[group]["group_state"] == "Stable"
        assert group not in {g["group_id"] for g in admin.list_groups(states_filter=["Empty"])}
        assert group in {g["group_id"] for g in admin.list_groups(states_filter=["stable"])}

        described = admin.describe_groups([group])[group]
        assert (described["group_state"], described["protocol_type"]) == ("Stable", "consumer")
        (m,) = described["members"]
        assert (m["client_id"], m["client_host"]) == ("admin-probe", "/127.0.0.1")
        assert m["member_assignment"]["assigned_partitions"] == [{"topic": topic, "partitions": [0, 1, 2]}]

        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
    finally:
        member.stop()
    try:
        assert admin.describe_groups([group])[group]["group_state"] == "Empty"
        missing = _unique("never-seen")
        assert admin.delete_groups([group, missing]) == {group: "OK", missing: "GroupIdNotFoundError"}
        assert group not in {g["group_id"] for g in admin.list_groups()}
        assert admin.describe_groups([group])[group]["group_state"] == "Dead"
    finally:
        admin.close()


def test_aiokafka_admin_lists_and_describes_groups(broker: BrokerProcess) -> None:
    topic, group = _unique("adm-aio"), _unique("g")
    create_topic(broker.bootstrap, topic, 2)
    member = _stable_member(broker, topic, group)

    async def run() -> tuple[list[tuple[object, ...]], list[object]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.list_consumer_groups(), await admin.describe_consumer_groups([group])
        finally:
            await admin.close()

    try:
        listed, described = asyncio.run(run())
    finally:
        member.stop()
    assert (group, "consumer") in [tuple(entry[:2]) for entry in listed]
    (response,) = described
    (g,) = response.groups  # type: ignore[attr-defined]
    error_code, group_id, state, protocol_type, protocol, members = g[:6]
    assert (error_code, group_id, state, protocol_type, protocol) == (0, group, "Stable", "consumer", "range")
    assert [(m[1], m[2]) for m in members] == [("admin-probe", "/127.0.0.1")]


def test_confluent_admin_lists_describes_and_deletes_groups(broker: BrokerProcess) -> None:
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AclOperation

    topic, group = _unique("adm-ck"), _unique("g")
    create_topic(broker.bootstrap, topic, 2)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    member = _stable_member(broker, topic, group)
    try:
        stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(10)
        assert group in {g.group_id for g in stable.valid}
        empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(10)
        assert group not in {g.group_id for g in empty.valid}

        described = admin.describe_consumer_groups([group], include_authorized_operations=True)[group].result(10)
        assert described.state == ConsumerGroupState.STABLE
        # No ACLs: everything a group supports is allowed.
        assert set(described.authorized_operations) == {
            AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE
        }
        assert described.partition_assignor == "range"
        (m,) = described.members
        assert (m.client_id, m.host) == ("admin-probe", "/127.0.0.1")
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1]

        with pytest.raises(confluent_kafka.KafkaException) as refused:
            admin.delete_consumer_groups([group])[group].result(10)
        assert refused.value.args[0].code() == confluent_kafka.KafkaError.NON_EMPTY_GROUP
    finally:
        member.stop()
    admin.delete_consumer_groups([group])[group].result(10)
    listed = admin.list_consumer_groups().result(10)
    assert group not in {g.group_id for g in listed.valid}


# ------------------------------------------------------------------ offset delete


def test_offset_delete_forgets_unsubscribed_topics_only(broker: BrokerProcess) -> None:
    subscribed, other, group = _unique("od-sub"), _unique("od-other"), _unique("g")
    create_topic(broker.bootstrap, subscribed, 2)
    create_topic(broker.bootstrap, other, 2)
    admin = _kafka_python_admin(broker)
    committer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        everything = [kafka.TopicPartition(t, p) for t in (subscribed, other) for p in range(2)]
        committer.assign(everything)
        committer.commit({tp: OffsetAndMetadata(5, "", -1) for tp in everything})
        committer.close(autocommit=False)

        member = _stable_member(broker, subscribed, group)
        try:
            answer = admin.delete_group_offsets(group, everything)
        finally:
            member.stop()
        for tp in everything:
            expected = kafka.errors.GroupSubscribedToTopicError if tp.topic == subscribed else kafka.errors.NoError
            assert answer[tp] is expected, f"{tp}: {answer[tp]}"
        remaining = admin.list_group_offsets({group: None})[group]
        assert sorted(remaining) == [kafka.TopicPartition(subscribed, p) for p in range(2)]

        # Once the group is empty, the subscribed topic's offsets can go too.
        answer = admin.delete_group_offsets(group, [kafka.TopicPartition(subscribed, 0)])
        assert answer == {kafka.TopicPartition(subscribed, 0): kafka.errors.NoError}
        remaining = admin.list_group_offsets({group: None})[group]
        assert sorted(remaining) == [kafka.TopicPartition(subscribed, 1)]
    finally:
        admin.close()
