"""A consumer group of three members, through each real client: partitions move as
members join and leave while records keep arriving, and every record is consumed
exactly once; committed offsets survive a broker restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.harness import BrokerProcess
from compat_tests.test_groups_support import (
    CLIENTS,
    Ledger,
    MemberSpec,
    SteadyProducer,
    ThreadedMember,
    committed_total,
    create_topic,
    duplicates_and_losses,
    group_broker,
    new_member,
    wait_for,
)

pytestmark = pytest.mark.compat

PARTITIONS = 6


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with group_broker(tmp_path) as process:
        yield process


def _names(prefix: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"{prefix}-topic-{suffix}", f"{prefix}-group-{suffix}"


def _wait_for_split(members: list[ThreadedMember], what: str) -> None:
    """Until the members' latest assignments divide the partitions evenly between them."""

    def split() -> bool:
        latest = [m.assigned[-1] if m.assigned else set() for m in members]
        share = PARTITIONS // len(members)
        return all(len(a) == share for a in latest) and set().union(*latest) == set(range(PARTITIONS))

    wait_for(split, what)


@pytest.mark.parametrize("client", CLIENTS)
def test_group_of_three_consumes_every_record_once_while_members_join_and_leave(
    broker: BrokerProcess, client: str
) -> None:
    topic, group = _names("rebalance")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    spec = MemberSpec(broker.bootstrap, topic, group, ledger)
    producer = SteadyProducer(broker.bootstrap, topic, PARTITIONS)
    members = []
    try:
        producer.start()
        first = new_member(client, spec)
        members.append(first)
        first.start()
        wait_for(lambda: ledger.count_by(first.name) > 0, "the first member to consume")

        # Two more join: the six partitions are split three ways.
        for _ in range(2):
            joiner = new_member(client, spec)
            members.append(joiner)
            joiner.start()
        _wait_for_split(members, "three members to split the partitions")
        for m in members:
            wait_for(lambda m=m: ledger.count_by(m.name) > 0, f"{m.name} to consume")

        # One leaves: the other two take its partitions over.
        leaver = members[1]
        leaver.stop()
        remaining = [first, members[2]]
        _wait_for_split(remaining, "the remaining members to take the leaver's partitions")
        before = {m.name: ledger.count_by(m.name) for m in remaining}
        wait_for(
            lambda: all(ledger.count_by(m.name) > before[m.name] for m in remaining),
            "the remaining members to consume again",
        )

        # A new member joins: three again.
        late = new_member(client, spec)
        members.append(late)
        late.start()
        _wait_for_split([*remaining, late], "three members to split the partitions again")
        wait_for(lambda: ledger.count_by(late.name) > 0, "the late member to consume")

        producer.stop()
        sent = producer.sent
        wait_for(lambda: not duplicates_and_losses(sent, ledger)[1], "every record to be consumed")
        # Time for a wrongly re-delivered record to show up.
        time.sleep(0.5)
    finally:
        producer.close()
        for m in members:
            m.stop()
    duplicates, losses = duplicates_and_losses(sent, ledger)
    assert len(sent) > 100
    assert duplicates == [], f"{len(duplicates)} records consumed twice, e.g. {duplicates[:5]}"
    assert losses == [], f"{len(losses)} records never consumed, e.g. {losses[:5]}"
    assert first.assignments >= 3, "the first member should have seen each rebalance"


@pytest.mark.parametrize("client", CLIENTS)
def test_new_consumer_resumes_from_committed_offsets_after_broker_restart(
    broker: BrokerProcess, client: str
) -> None:
    topic, group = _names("restart")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    before_ledger = Ledger()
    producer = SteadyProducer(broker.bootstrap, topic, PARTITIONS, prefix="before")
    try:
        before = producer.send(60)
    finally:
        producer.close()
    member = new_member(client, MemberSpec(broker.bootstrap, topic, group, before_ledger))
    member.start()
    try:
        wait_for(lambda: not duplicates_and_losses(before, before_ledger)[1], "the first records")
    finally:
        member.stop()

    broker.restart()

    producer = SteadyProducer(broker.bootstrap, topic, PARTITIONS, prefix="after")
    try:
        after = producer.send(30)
    finally:
        producer.close()
    ledger = Ledger()
    member = new_member(client, MemberSpec(broker.bootstrap, topic, group, ledger))
    member.start()
    try:
        wait_for(lambda: not duplicates_and_losses(after, ledger)[1], "the records sent after the restart")
        time.sleep(0.5)
    finally:
        member.stop()
    got = sorted(ledger.values())
    assert got == sorted(after), f"expected only the {len(after)} new records, got {len(got)}"


@pytest.mark.parametrize("client", CLIENTS)
def test_live_group_loses_nothing_across_a_broker_restart(broker: BrokerProcess, client: str) -> None:
    """Membership is kept across a restart, with the committed offsets: the restarted
    broker resumes the group's generation, so live members carry on with their
    partitions, without rejoining, and nothing committed before is delivered again."""
    topic, group = _names("live-restart")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    ledger = Ledger()
    spec = MemberSpec(broker.bootstrap, topic, group, ledger)
    members = [new_member(client, spec) for _ in range(2)]
    producer = SteadyProducer(broker.bootstrap, topic, PARTITIONS)
    try:
        for m in members:
            m.tolerate_failed_commits = True
            m.start()
        _wait_for_split(members, "two members to split the partitions")
        sent = producer.send(60)
        wait_for(lambda: not duplicates_and_losses(sent, ledger)[1], "the records sent before the restart")
        wait_for(lambda: committed_total(broker.bootstrap, group) == len(sent), "their commits")
        before = len(ledger.deliveries)

        assignments = [m.assignments for m in members]
        broker.restart()
        sent = sent + producer.send(60)
        wait_for(
            lambda: not duplicates_and_losses(sent, ledger)[1],
            "the records sent after the restart", timeout=40,
        )
        # Time for a rebalance, or redelivery of anything uncommitted, to show up.
        time.sleep(2)
        assert [m.assignments for m in members] == assignments, "the members were made to rejoin"
    finally:
        producer.close()
        for m in members:
            m.stop()
    duplicates, losses = duplicates_and_losses(sent, ledger)
    assert losses == []
    assert all(d.value not in duplicates for d in ledger.deliveries[:before]), (
        "records committed before the restart were delivered again"
    )
