"""Metadata Raft members as real processes on loopback: crashes, elections, catch-up."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.coordination.commands import (
    BrokerHeartbeat,
    CommitOffsets,
    CreateTopic,
    OffsetEntry,
    RegisterBroker,
    RollSegment,
    command_to_dict,
)

from .processes import Member, make_group

pytestmark = pytest.mark.fault

# Short election timeouts keep the suite fast; the defaults are tuned for busy brokers.
TUNING = {"election_timeout_min_s": 0.3, "election_timeout_max_s": 0.6}


def propose(member: Member, command: Any, timeout: float = 15.0) -> dict[str, Any]:
    reply = member.request({"op": "propose", "cmd": command_to_dict(command)}, timeout)
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


def snapshot(member: Member) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(member.request({"op": "snapshot"})["snapshot"])
    return body


def wait_for_leader(members: list[Member], timeout: float = 15.0) -> Member:
    """Until every given member names the same leader, and it is one of them."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = [m.request({"op": "status"}) for m in members]
        leaders = {s["leader"] for s in statuses}
        if len(leaders) == 1 and None not in leaders:
            (leader,) = leaders
            match = [m for m, s in zip(members, statuses, strict=True) if s["is_leader"]]
            if len(match) == 1 and match[0].addr == leader:
                return match[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no agreed leader: {statuses}")
        time.sleep(0.05)


def wait_for_equal_snapshots(members: list[Member], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        snaps = [snapshot(m) for m in members]
        if all(s == snaps[0] for s in snaps):
            return snaps[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"snapshots still differ: versions {[s['version'] for s in snaps]}"
            )
        time.sleep(0.1)


@pytest.fixture
def group_of_three(tmp_path: Path) -> Iterator[list[Member]]:
    members = make_group(3, tmp_path, TUNING)
    try:
        for m in members:
            m.start()
        for m in members:
            assert m.request({"op": "wait_ready"}) == {"ok": True}
        yield members
    finally:
        for m in members:
            m.stop()


@pytest.mark.parametrize("fsync_on_ack", [True, False])
def test_acknowledged_proposals_survive_kill_9_of_a_single_member(
    tmp_path: Path, fsync_on_ack: bool
) -> None:
    (member,) = make_group(1, tmp_path, {**TUNING, "fsync_on_ack": fsync_on_ack})
    member.start()
    try:
        assert member.request({"op": "wait_ready"}) == {"ok": True}
        propose(member, RegisterBroker(1, "127.0.0.1", 9092))
        propose(member, CreateTopic("t", bytes(range(1, 17)), 1, 1))
        acknowledged = 300
        for i in range(acknowledged):
            result = propose(member, CommitOffsets(f"group-{i}", [OffsetEntry("t", 0, i)]))
            assert result["partitions"][0]["error"] is None
        before = snapshot(member)
        member.kill9()  # no clean shutdown, no final fsync

        member.start()
        assert member.request({"op": "wait_ready"}) == {"ok": True}
        after = snapshot(member)
        groups = {o[0]: o[3]["offset"] for o in after["offsets"]}
        assert groups == {f"group-{i}": i for i in range(acknowledged)}
        assert after == before
    finally:
        member.stop()


def test_three_members_elect_one_leader_and_followers_forward_proposals(
    group_of_three: list[Member],
) -> None:
    members = group_of_three
    leader = wait_for_leader(members)
    follower = next(m for m in members if m is not leader)
    assert propose(follower, RegisterBroker(1, "127.0.0.1", 9092))["type"] == "BrokerRegistered"
    created = propose(follower, CreateTopic("t", bytes(range(1, 17)), 2, 1))
    assert created["type"] == "TopicCreated"
    # the proposing follower has applied its own write by the time it answers
    assert [t["name"] for t in snapshot(follower)["topics"]] == ["t"]
    refused = propose(follower, CreateTopic("t", bytes(range(2, 18)), 2, 1))
    assert refused["refusal"] == "TOPIC_ALREADY_EXISTS"
    state = wait_for_equal_snapshots(members)
    assert state["version"] == 2


def test_leader_kill_9_then_new_leader_commits_and_restarted_member_catches_up(
    group_of_three: list[Member],
) -> None:
    members = group_of_three
    leader = wait_for_leader(members)
    propose(leader, RegisterBroker(1, "127.0.0.1", 9092))
    propose(leader, CreateTopic("t", bytes(range(1, 17)), 1, 1))
    for i in range(20):
        propose(leader, CommitOffsets("g", [OffsetEntry("t", 0, i)]))

    leader.kill9()
    survivors = [m for m in members if m is not leader]
    killed_at = time.monotonic()
    # proposed while the survivors still believe in the dead leader: the proposal is
    # retried until the new leader commits it
    assert propose(survivors[0], BrokerHeartbeat(1))["type"] == "Applied"
    new_leader = wait_for_leader(survivors)
    assert new_leader is not leader
    # both survivors can still commit (one of them forwards to the new leader)
    for end_offset, m in ((100, survivors[0]), (200, survivors[1])):
        epoch = snapshot(m)["topics"][0]["partitions"][0]["segments"][-1]["epoch"]
        assert propose(m, RollSegment("t", 0, epoch, end_offset))["type"] == "SegmentRolled"
    failover = time.monotonic() - killed_at
    for i in range(20, 40):
        propose(survivors[i % 2], CommitOffsets("g", [OffsetEntry("t", 0, i)]))

    leader.start()  # same address, same data directory
    assert leader.request({"op": "wait_ready"}) == {"ok": True}
    state = wait_for_equal_snapshots(members)
    offsets = {(o[0], o[1], o[2]): o[3]["offset"] for o in state["offsets"]}
    assert offsets == {("g", "t", 0): 39}
    assert len(state["topics"][0]["partitions"][0]["segments"]) == 3
    assert failover < 15, failover


def test_a_member_added_at_runtime_catches_up_and_can_be_removed(
    group_of_three: list[Member], tmp_path: Path
) -> None:
    members = group_of_three
    leader = wait_for_leader(members)
    propose(leader, RegisterBroker(1, "127.0.0.1", 9092))
    propose(leader, CreateTopic("t", bytes(range(1, 17)), 1, 1))

    (newcomer,) = make_group(1, tmp_path / "added", TUNING)
    newcomer.peers = [*(m.addr for m in members), newcomer.addr]
    newcomer.start()
    try:
        assert leader.request({"op": "add_node", "address": newcomer.addr}) == {"ok": True}
        assert newcomer.request({"op": "wait_ready"}) == {"ok": True}
        everyone = [*members, newcomer]
        wait_for_equal_snapshots(everyone)
        assert newcomer.addr in leader.request({"op": "status"})["members"]
        # the newcomer proposes like any member
        propose(newcomer, CommitOffsets("g", [OffsetEntry("t", 0, 5)]))
        wait_for_equal_snapshots(everyone)

        assert leader.request({"op": "remove_node", "address": newcomer.addr}) == {"ok": True}
        assert newcomer.addr not in leader.request({"op": "status"})["members"]
    finally:
        newcomer.stop()
    propose(leader, CommitOffsets("g", [OffsetEntry("t", 0, 6)]))
    state = wait_for_equal_snapshots(members)
    assert state["offsets"][0][3]["offset"] == 6


def test_member_behind_a_compacted_log_is_sent_the_snapshot(
    group_of_three: list[Member],
) -> None:
    members = group_of_three
    leader = wait_for_leader(members)
    follower = next(m for m in members if m is not leader)
    propose(leader, RegisterBroker(1, "127.0.0.1", 9092))
    propose(leader, CreateTopic("t", bytes(range(1, 17)), 1, 1))
    follower.kill9()
    for i in range(30):
        propose(leader, CommitOffsets(f"g{i}", [OffsetEntry("t", 0, i)]))
    # every live member compacts, so no one can replay the entries the follower missed
    for m in members:
        if m is not follower:
            m.request({"op": "compact"})
    deadline = time.monotonic() + 10
    while not all(
        (m.data_dir / "raft" / "snapshot").exists() for m in members if m is not follower
    ):
        assert time.monotonic() < deadline, "log compaction did not write a snapshot"
        time.sleep(0.05)
    propose(leader, CommitOffsets("late", [OffsetEntry("t", 0, 99)]))

    follower.start()
    assert follower.request({"op": "wait_ready"}) == {"ok": True}
    state = wait_for_equal_snapshots(members)
    assert len(state["offsets"]) == 31
    assert (follower.data_dir / "raft" / "snapshot").exists()
