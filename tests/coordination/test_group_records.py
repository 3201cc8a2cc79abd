"""Classic groups' membership in the metadata (StoreGroup, ForgetGroup): what a node
that takes a group over resumes from."""

from __future__ import annotations

import dataclasses

import pytest

from broker.coordination.commands import ForgetGroup, StoreGroup, command_from_dict, command_to_dict
from broker.coordination.errors import MetadataError, Refusal
from broker.coordination.group_records import MAX_RECORD_BYTES, StoredMember
from broker.coordination.results import GroupStored
from broker.coordination.state import ClusterState

pytestmark = pytest.mark.unit


def member(member_id: str = "m1", **changes: object) -> StoredMember:
    m = StoredMember(member_id, None, "client", "/127.0.0.1", 10_000, 30_000, b"subscription", b"assignment")
    return dataclasses.replace(m, **changes)  # type: ignore[arg-type]


def store(generation: int, *members: StoredMember, leader: str | None = "m1") -> StoreGroup:
    return StoreGroup("g", generation, "consumer", "range", leader if members else None, list(members))


def test_a_stored_group_round_trips_through_the_raft_encoding_and_a_snapshot() -> None:
    state = ClusterState()
    command = store(3, member("m1"), member("m2", group_instance_id="static-2", assignment=b""))
    assert state.apply(command_from_dict(command_to_dict(command)), 1) == GroupStored("g", 3)
    assert state.stored_group("g") == command.record()
    copy = ClusterState.from_snapshot(state.to_snapshot())
    assert copy.stored_group("g") == command.record()
    assert copy.to_snapshot() == state.to_snapshot()


def test_an_older_generation_is_refused_and_the_same_one_replaces() -> None:
    state = ClusterState()
    assert state.apply(store(3, member("m1")), 1) == GroupStored("g", 3)
    older = state.apply(store(2, member("m1")), 2)
    assert isinstance(older, Refusal) and older.error is MetadataError.ILLEGAL_GENERATION
    # A static member that came back under a new id: same generation, new member id.
    assert state.apply(store(3, member("m9"), leader="m9"), 3) == GroupStored("g", 3)
    stored = state.stored_group("g")
    assert stored is not None and [m.member_id for m in stored.members] == ["m9"]
    # Emptied: a later generation without members.
    assert state.apply(store(4), 4) == GroupStored("g", 4)


@pytest.mark.parametrize("bad", [
    StoreGroup("", 1, "consumer", "range", None, []),
    StoreGroup("g", -1, "consumer", "range", None, []),
    StoreGroup("g", 1, "consumer", "range", "nobody", [member("m1")]),
    StoreGroup("g", 1, "consumer", "range", "m1", [member("m1"), member("m1")]),
    StoreGroup("g", 1, "consumer", "range", "m1", [member("m1", session_timeout_ms=0)]),
    StoreGroup("g", 1, "consumer", "range", "m1", [member("m1", subscription="text")]),
    StoreGroup("g", 1, "consumer", "range", "m1",
               [member("m1", assignment=b"x" * MAX_RECORD_BYTES)]),
    StoreGroup("g", 1, 7, "range", None, []),  # type: ignore[arg-type]
], ids=["no-id", "negative-generation", "leader-not-member", "member-twice", "zero-session",
        "text-metadata", "too-large", "bad-protocol-type"])
def test_a_malformed_record_is_refused_and_nothing_is_stored(bad: StoreGroup) -> None:
    state = ClusterState()
    result = state.apply(bad, 1)
    assert isinstance(result, Refusal) and result.error is MetadataError.INVALID_REQUEST, result
    assert state.stored_group_ids() == []


def test_a_malformed_member_row_from_the_log_is_refused_not_raised() -> None:
    state = ClusterState()
    raw = command_to_dict(store(1, member("m1")))
    raw["members"] = [["m1", None, "client"]]  # a row cut short
    result = state.apply(raw, 1)
    assert isinstance(result, Refusal) and result.error is MetadataError.UNKNOWN_COMMAND


def test_forgetting_a_group_drops_its_record_and_repeats_harmlessly() -> None:
    state = ClusterState()
    state.apply(store(1, member("m1")), 1)
    assert state.apply(ForgetGroup("g"), 2) == GroupStored("g", -1)
    assert state.stored_group("g") is None
    assert state.apply(ForgetGroup("g"), 3) == GroupStored("g", -1)
