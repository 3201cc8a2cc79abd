"""Static membership (KIP-345): a member with a group.instance.id that restarts within
its session takes its old place back without a rebalance, and an administrator can
remove it by instance id."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kafka
import pytest
from kafka.admin import MemberToRemove

from compat_tests.harness import BrokerProcess
from compat_tests.test_groups_support import (
    Ledger,
    MemberSpec,
    SteadyProducer,
    ThreadedMember,
    create_topic,
    group_broker,
    new_member,
    wait_for,
)

pytestmark = pytest.mark.compat

PARTITIONS = 4
STATIC_CLIENTS = ("kafka-python", "aiokafka", "confluent-kafka")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with group_broker(tmp_path) as process:
        yield process


def _static(client: str, spec: MemberSpec, instance: str) -> ThreadedMember:
    # Closing a static member sends no LeaveGroup (in every client here): its session holds its place.
    return new_member(client, MemberSpec(spec.bootstrap, spec.topic, spec.group, spec.ledger, instance))


@pytest.mark.parametrize("client", STATIC_CLIENTS)
def test_restarted_static_member_rejoins_without_a_rebalance(broker: BrokerProcess, client: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"static-{suffix}", f"static-group-{suffix}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    spec = MemberSpec(broker.bootstrap, topic, group, ledger)
    producer = SteadyProducer(broker.bootstrap, topic, PARTITIONS)
    steady = _static(client, spec, "instance-a")
    restarting = _static(client, spec, "instance-b")
    members = [steady, restarting]
    try:
        producer.start()
        for m in members:
            m.start()
        wait_for(
            lambda: all(m.assigned and len(m.assigned[-1]) == PARTITIONS // 2 for m in members),
            "both static members to hold half the partitions",
        )
        time.sleep(0.5)
        assignments_before = steady.assignments
        held = restarting.assigned[-1]

        restarting.stop()
        comeback = _static(client, spec, "instance-b")
        members.append(comeback)
        comeback.start()
        wait_for(lambda: ledger.count_by(comeback.name) > 0, "the restarted member to consume")
        # Long enough for any rebalance the rejoin caused to reach the other member.
        time.sleep(1.0)
        assert comeback.assigned == [held], "the restarted member should get its old partitions"
        assert steady.assignments == assignments_before, "the other member saw a rebalance"
    finally:
        producer.close()
        for m in members:
            m.stop()


def test_administrator_removes_a_static_member_by_instance_id(broker: BrokerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"remove-{suffix}", f"remove-group-{suffix}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    spec = MemberSpec(broker.bootstrap, topic, group, Ledger())
    gone = _static("kafka-python", spec, "instance-gone")
    stays = _static("kafka-python", spec, "instance-stays")
    admin = kafka.KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        gone.start()
        stays.start()
        wait_for(lambda: all(m.assigned and len(m.assigned[-1]) == 2 for m in (gone, stays)), "a split")
        gone.stop()
        # Without the removal it would hold its partitions until its session ran out.
        admin.remove_group_members(group, [MemberToRemove(group_instance_id="instance-gone")])
        wait_for(lambda: stays.assigned[-1] == set(range(PARTITIONS)), "the survivor to own everything", 3.0)
        (member,) = admin.describe_groups([group])[group]["members"]
        assert member["group_instance_id"] == "instance-stays"
    finally:
        admin.close()
        stays.stop()
