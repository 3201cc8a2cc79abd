"""The group APIs at every version the broker serves, spoken byte for byte over a raw
connection: what each version may and may not carry, and the answers clients rely on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.protocol import SUPPORTED_VERSIONS, api_key_for_name
from broker.protocol.errors import ErrorCode
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient
from compat_tests.test_groups_support import create_topic, group_broker

pytestmark = pytest.mark.compat


def _versions(api: str) -> range:
    low, high = SUPPORTED_VERSIONS[api_key_for_name(api)]
    return range(low, high + 1)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    # One broker for the module: every test uses its own group and topic names.
    with group_broker(Path(tmp_path_factory.mktemp("groups-protocol"))) as process:
        yield process


@pytest.fixture
def raw(broker: BrokerProcess) -> Iterator[RawClient]:
    with RawClient(broker.bootstrap) as client:
        yield client


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------ FindCoordinator


@pytest.mark.parametrize("version", _versions("FindCoordinator"))
def test_find_coordinator_names_this_broker_for_groups_and_none_for_transactions(
    broker: BrokerProcess, raw: RawClient, version: int
) -> None:
    port = broker.port
    if version >= 4:
        answer = raw.request("FindCoordinator", version, {"key_type": 0, "coordinator_keys": ["g1", "g2"]})
        assert [(c.key, c.error_code, c.node_id, c.host, c.port) for c in answer.coordinators] == [
            ("g1", 0, 1, "127.0.0.1", port), ("g2", 0, 1, "127.0.0.1", port)
        ]
        txn = raw.request("FindCoordinator", version, {"key_type": 1, "coordinator_keys": ["tx"]})
        assert [(c.key, c.error_code) for c in txn.coordinators] == [
            ("tx", ErrorCode.COORDINATOR_NOT_AVAILABLE)
        ]
        return
    answer = raw.request("FindCoordinator", version, {"key": "g1", "key_type": 0})
    assert (answer.error_code, answer.node_id, answer.host, answer.port) == (0, 1, "127.0.0.1", port)
    if version >= 1:
        txn = raw.request("FindCoordinator", version, {"key": "tx", "key_type": 1})
        assert (txn.error_code, txn.node_id) == (ErrorCode.COORDINATOR_NOT_AVAILABLE, -1)


# ------------------------------------------------------------------ membership


def _join(raw: RawClient, version: int, group: str, member_id: str, instance: str | None = None) -> Any:
    return raw.request("JoinGroup", version, {
        "group_id": group, "session_timeout_ms": 10_000, "rebalance_timeout_ms": 5_000,
        "member_id": member_id, "group_instance_id": instance, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b"\x00\x01meta"}], "reason": "test",
    })


@pytest.mark.parametrize("version", _versions("JoinGroup"))
def test_one_member_joins_syncs_heartbeats_and_leaves_at_every_version(raw: RawClient, version: int) -> None:
    group = _unique("membership")
    sync_v, heartbeat_v, leave_v = min(version, 5), min(version, 4), min(version, 5)
    instance = "instance-1" if version >= 5 else None

    joined = _join(raw, version, group, "", instance)
    if version >= 4 and instance is None:
        # KIP-394: a new dynamic member is given its id and must join again with it.
        assert joined.error_code == ErrorCode.MEMBER_ID_REQUIRED
        assert joined.member_id
        joined = _join(raw, version, group, joined.member_id, instance)
    assert joined.error_code == ErrorCode.NONE
    member_id = joined.member_id
    assert joined.generation_id == 1
    assert (joined.leader, joined.protocol_name) == (member_id, "range")
    if version >= 7:
        assert joined.protocol_type == "consumer"
    assert [(m.member_id, bytes(m.metadata)) for m in joined.members] == [(member_id, b"\x00\x01meta")]
    if version >= 5:
        assert joined.members[0].group_instance_id == instance

    synced = raw.request("SyncGroup", sync_v, {
        "group_id": group, "generation_id": 1, "member_id": member_id, "group_instance_id": instance,
        "protocol_type": "consumer", "protocol_name": "range",
        "assignments": [{"member_id": member_id, "assignment": b"mine"}],
    })
    assert (synced.error_code, bytes(synced.assignment)) == (ErrorCode.NONE, b"mine")
    if sync_v >= 5:
        assert (synced.protocol_type, synced.protocol_name) == ("consumer", "range")

    beat = raw.request("Heartbeat", heartbeat_v, {
        "group_id": group, "generation_id": 1, "member_id": member_id, "group_instance_id": instance,
    })
    assert beat.error_code == ErrorCode.NONE
    stale = raw.request("Heartbeat", heartbeat_v, {
        "group_id": group, "generation_id": 0, "member_id": member_id, "group_instance_id": instance,
    })
    assert stale.error_code == ErrorCode.ILLEGAL_GENERATION

    if leave_v < 3:
        left = raw.request("LeaveGroup", leave_v, {"group_id": group, "member_id": member_id})
        assert left.error_code == ErrorCode.NONE
    else:
        left = raw.request("LeaveGroup", leave_v, {"group_id": group, "members": [
            {"member_id": member_id, "group_instance_id": instance, "reason": "done"},
            {"member_id": "nobody", "group_instance_id": None},
        ]})
        assert left.error_code == ErrorCode.NONE
        assert [(m.member_id, m.error_code) for m in left.members] == [
            (member_id, ErrorCode.NONE), ("nobody", ErrorCode.UNKNOWN_MEMBER_ID)
        ]
    described = raw.request("DescribeGroups", 0, {"groups": [group]})
    assert described.groups[0].group_state == "Empty"


def test_join_with_a_session_timeout_outside_the_brokers_bounds_is_refused(raw: RawClient) -> None:
    answer = raw.request("JoinGroup", 5, {
        "group_id": _unique("bounds"), "session_timeout_ms": 1, "rebalance_timeout_ms": 5_000,
        "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}],
    })
    assert answer.error_code == ErrorCode.INVALID_SESSION_TIMEOUT


def test_requests_naming_no_group_are_refused(raw: RawClient) -> None:
    joined = _join(raw, 3, "", "")
    assert joined.error_code == ErrorCode.INVALID_GROUP_ID
    beat = raw.request("Heartbeat", 0, {"group_id": "g-none", "generation_id": 1, "member_id": "m"})
    assert beat.error_code == ErrorCode.UNKNOWN_MEMBER_ID


# ------------------------------------------------------------------ offsets


def _commit_body(group: str, topics: dict[str, list[int]], offset: int, metadata: str | None) -> dict[str, Any]:
    return {
        "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
        "group_instance_id": None, "retention_time_ms": -1,
        "topics": [
            {"name": name, "partitions": [
                {"partition_index": p, "committed_offset": offset, "committed_leader_epoch": 3,
                 "commit_timestamp": -1, "committed_metadata": metadata}
                for p in parts
            ]}
            for name, parts in topics.items()
        ],
    }


def _fetch(raw: RawClient, version: int, group: str, topics: dict[str, list[int]] | None) -> dict[tuple[str, int], tuple[int, int, str | None, int]]:
    wanted = None if topics is None else [
        {"name": n, "partition_indexes": ps} for n, ps in topics.items()
    ]
    if version >= 8:
        answer = raw.request("OffsetFetch", version, {
            "groups": [{"group_id": group, "member_id": None, "member_epoch": -1, "topics": wanted}],
            "require_stable": True,
        })
        (g,) = answer.groups
        assert g.error_code == ErrorCode.NONE
        topics_out = g.topics
    else:
        answer = raw.request("OffsetFetch", version, {"group_id": group, "topics": wanted, "require_stable": True})
        if version >= 2:
            assert answer.error_code == ErrorCode.NONE
        topics_out = answer.topics
    return {
        (t.name, p.partition_index): (p.committed_offset, p.committed_leader_epoch, p.metadata, p.error_code)
        for t in topics_out for p in t.partitions
    }


@pytest.mark.parametrize("version", _versions("OffsetCommit"))
def test_commit_answers_unknown_partitions_and_commits_the_rest_at_every_version(
    broker: BrokerProcess, raw: RawClient, version: int
) -> None:
    topic, group = _unique("commit"), _unique("g")
    create_topic(broker.bootstrap, topic, 2)
    asked = {topic: [0, 1, 7], _unique("no-such-topic"): [0]}
    answer = raw.request("OffsetCommit", version, _commit_body(group, asked, 42, f"meta-v{version}"))
    errors = {(t.name, p.partition_index): p.error_code for t in answer.topics for p in t.partitions}
    unknown = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert errors == {
        (topic, 0): ErrorCode.NONE, (topic, 1): ErrorCode.NONE,
        (topic, 7): unknown, (next(iter(asked.keys() - {topic})), 0): unknown,
    }

    fetch_version = min(version, max(_versions("OffsetFetch")))
    got = _fetch(raw, fetch_version, group, {topic: [0, 1, 7]})
    # Leader epochs are committed from v6 and fetched from v5.
    epoch = 3 if version >= 6 else -1
    assert got[(topic, 0)] == (42, epoch, f"meta-v{version}", ErrorCode.NONE)
    assert got[(topic, 1)] == got[(topic, 0)]
    # Never committed: offset -1 and no error.
    assert got[(topic, 7)][0] == -1 and got[(topic, 7)][3] == ErrorCode.NONE


@pytest.mark.parametrize("version", [v for v in _versions("OffsetFetch") if v >= 2])
def test_fetch_of_all_partitions_lists_every_commit(broker: BrokerProcess, raw: RawClient, version: int) -> None:
    topic, group = _unique("fetch-all"), _unique("g")
    create_topic(broker.bootstrap, topic, 3)
    answer = raw.request("OffsetCommit", 2, _commit_body(group, {topic: [0, 2]}, 9, None))
    assert all(p.error_code == 0 for t in answer.topics for p in t.partitions)
    got = _fetch(raw, version, group, None)
    assert sorted(got) == [(topic, 0), (topic, 2)]
    # A null metadata string is stored as an empty one, as Kafka does.
    assert {v[0::2] for v in got.values()} == {(9, "")}


def test_batched_offset_fetch_answers_each_group(broker: BrokerProcess, raw: RawClient) -> None:
    topic = _unique("batched")
    create_topic(broker.bootstrap, topic, 1)
    first, second, empty = _unique("g1"), _unique("g2"), _unique("g-empty")
    raw.request("OffsetCommit", 8, _commit_body(first, {topic: [0]}, 1, "a"))
    raw.request("OffsetCommit", 8, _commit_body(second, {topic: [0]}, 2, "b"))
    answer = raw.request("OffsetFetch", 8, {
        "groups": [
            {"group_id": g, "topics": [{"name": topic, "partition_indexes": [0]}]}
            for g in (first, second, empty)
        ],
        "require_stable": False,
    })
    got = {g.group_id: [(p.committed_offset, p.metadata) for t in g.topics for p in t.partitions] for g in answer.groups}
    assert got == {first: [(1, "a")], second: [(2, "b")], empty: [(-1, "")]}


def test_offset_delete_on_unknown_topics_and_groups(broker: BrokerProcess, raw: RawClient) -> None:
    topic, group = _unique("odel"), _unique("g")
    create_topic(broker.bootstrap, topic, 1)
    raw.request("OffsetCommit", 2, _commit_body(group, {topic: [0]}, 5, None))
    missing_topic = _unique("missing")
    answer = raw.request("OffsetDelete", 0, {"group_id": group, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0}]},
        {"name": missing_topic, "partitions": [{"partition_index": 0}]},
    ]})
    assert answer.error_code == ErrorCode.NONE
    errors = {(t.name, p.partition_index): p.error_code for t in answer.topics for p in t.partitions}
    assert errors == {(topic, 0): ErrorCode.NONE, (missing_topic, 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert _fetch(raw, 7, group, {topic: [0]})[(topic, 0)][0] == -1

    unknown_group = raw.request("OffsetDelete", 0, {"group_id": _unique("nobody"), "topics": []})
    assert unknown_group.error_code == ErrorCode.GROUP_ID_NOT_FOUND


@pytest.mark.parametrize("version", _versions("ListGroups"))
def test_list_groups_filters_by_state_and_type(raw: RawClient, version: int) -> None:
    group = _unique("listed")
    joined = _join(raw, 3, group, "")
    assert joined.error_code == ErrorCode.NONE
    body: dict[str, Any] = {"states_filter": ["completingrebalance"] if version >= 4 else [], "types_filter": []}
    answer = raw.request("ListGroups", version, body)
    assert answer.error_code == ErrorCode.NONE
    listed = {g.group_id: g for g in answer.groups}
    assert listed[group].protocol_type == "consumer"
    if version >= 4:
        assert listed[group].group_state == "CompletingRebalance"
        assert all(g.group_state == "CompletingRebalance" for g in answer.groups)
        stable_only = raw.request("ListGroups", version, {"states_filter": ["Stable"], "types_filter": []})
        assert group not in {g.group_id for g in stable_only.groups}
    if version >= 5:
        assert listed[group].group_type == "classic"
        other = raw.request("ListGroups", version, {"states_filter": [], "types_filter": ["consumer"]})
        assert group not in {g.group_id for g in other.groups}
    raw.request("LeaveGroup", 0, {"group_id": group, "member_id": joined.member_id})


@pytest.mark.parametrize("version", _versions("DeleteGroups"))
def test_delete_groups_answers_each_group(broker: BrokerProcess, raw: RawClient, version: int) -> None:
    topic = _unique("delete")
    create_topic(broker.bootstrap, topic, 1)
    with_offsets, unknown = _unique("g"), _unique("never")
    raw.request("OffsetCommit", 2, _commit_body(with_offsets, {topic: [0]}, 5, None))
    answer = raw.request("DeleteGroups", version, {"groups_names": [with_offsets, unknown]})
    assert {r.group_id: r.error_code for r in answer.results} == {
        with_offsets: ErrorCode.NONE, unknown: ErrorCode.GROUP_ID_NOT_FOUND
    }
    assert _fetch(raw, 7, with_offsets, {topic: [0]})[(topic, 0)][0] == -1


@pytest.mark.parametrize("version", _versions("DescribeGroups"))
def test_describe_groups_shows_a_stable_members_metadata_and_assignment(raw: RawClient, version: int) -> None:
    group = _unique("described")
    joined = _join(raw, 5, group, "", "instance-d")
    assert joined.error_code == ErrorCode.NONE
    raw.request("SyncGroup", 3, {
        "group_id": group, "generation_id": joined.generation_id, "member_id": joined.member_id,
        "group_instance_id": "instance-d",
        "assignments": [{"member_id": joined.member_id, "assignment": b"assigned"}],
    })
    answer = raw.request("DescribeGroups", version, {
        "groups": [group, _unique("unknown")], "include_authorized_operations": True,
    })
    stable, unknown = answer.groups
    assert (stable.error_code, stable.group_state, stable.protocol_type, stable.protocol_data) == (
        ErrorCode.NONE, "Stable", "consumer", "range"
    )
    (member,) = stable.members
    assert (member.member_id, member.client_id, member.client_host) == (joined.member_id, "raw-client", "/127.0.0.1")
    assert (bytes(member.member_metadata), bytes(member.member_assignment)) == (b"\x00\x01meta", b"assigned")
    if version >= 4:
        assert member.group_instance_id == "instance-d"
    if version >= 3:
        # READ, DELETE and DESCRIBE: nothing is forbidden without ACLs.
        assert stable.authorized_operations == (1 << 3) | (1 << 6) | (1 << 8)
    # Kafka describes a group it does not know as Dead, without an error.
    assert (unknown.error_code, unknown.group_state, list(unknown.members)) == (ErrorCode.NONE, "Dead", [])
    raw.request("LeaveGroup", 3, {"group_id": group, "members": [
        {"member_id": "", "group_instance_id": "instance-d"},
    ]})


@pytest.mark.parametrize(("version", "expected"), [
    (8, ErrorCode.ILLEGAL_GENERATION), (9, ErrorCode.GROUP_ID_NOT_FOUND),
])
def test_commit_in_a_generation_of_an_unknown_group_is_refused(
    broker: BrokerProcess, raw: RawClient, version: int, expected: ErrorCode
) -> None:
    topic = _unique("gen")
    create_topic(broker.bootstrap, topic, 1)
    body = _commit_body(_unique("never-formed"), {topic: [0]}, 1, None)
    body.update(generation_id_or_member_epoch=3, member_id="someone")
    answer = raw.request("OffsetCommit", version, body)
    assert [p.error_code for t in answer.topics for p in t.partitions] == [expected]
