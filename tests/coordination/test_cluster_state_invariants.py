"""Invariants of ClusterState under arbitrary command sequences (hypothesis)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.coordination.commands import (
    COMMAND_TYPES,
    AllocateProducerIds,
    BrokerHeartbeat,
    CommitOffsets,
    CreatePartitions,
    CreateTopic,
    DeleteGroupOffsets,
    DeleteOffsets,
    DeleteScramCredential,
    DeleteTopic,
    ExpireOffsets,
    OffsetEntry,
    ReassignLeader,
    RegisterBroker,
    RenewLease,
    RollSegment,
    UnregisterBroker,
    UpsertScramCredential,
)
from broker.coordination.errors import Refusal
from broker.coordination.scram_credentials import credential_problem
from broker.coordination.state import PRODUCER_ID_BLOCK_SIZE, ClusterState

pytestmark = pytest.mark.unit

nodes = st.integers(1, 4)
names = st.sampled_from(["a", "b", "c"])
parts = st.integers(0, 3)
epochs = st.integers(0, 4)
offsets = st.integers(0, 1000)

commands = st.one_of(
    st.builds(RegisterBroker, nodes, st.just("127.0.0.1"), st.integers(1, 65535)),
    st.builds(BrokerHeartbeat, nodes),
    st.builds(UnregisterBroker, nodes),
    st.builds(
        CreateTopic,
        names,
        st.integers(1, 2**128 - 1).map(lambda n: n.to_bytes(16, "big")),
        st.integers(-1, 4),
        st.integers(-1, 3),
    ),
    st.builds(DeleteTopic, names),
    st.builds(CreatePartitions, names, st.integers(0, 5)),
    st.builds(
        CommitOffsets,
        st.sampled_from(["g1", "g2"]),
        st.lists(st.builds(OffsetEntry, names, parts, offsets), max_size=3),
        st.one_of(st.none(), st.integers(0, 10**7)),
    ),
    st.builds(DeleteOffsets, st.sampled_from(["g1", "g2"]), st.lists(st.tuples(names, parts))),
    st.builds(DeleteGroupOffsets, st.sampled_from(["g1", "g2"])),
    st.builds(ExpireOffsets),
    st.builds(AllocateProducerIds, nodes),
    st.builds(RollSegment, names, parts, epochs, offsets),
    st.builds(RenewLease, names, parts, epochs, nodes, st.integers(0, 10**7)),
    st.builds(ReassignLeader, names, parts, epochs, offsets),
    st.builds(
        UpsertScramCredential,
        st.sampled_from(["u1", "u2", ""]),
        st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1"]),
        st.binary(max_size=4),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        st.sampled_from([4096, 4095, 16384]),
    ),
    st.builds(DeleteScramCredential, st.sampled_from(["u1", "u2"]),
              st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-512"])),
)
steps = st.lists(st.tuples(commands, st.integers(0, 3_000)), max_size=80)


def check_invariants(state: ClusterState) -> None:
    for topic in state.topics.values():
        assert len(topic.topic_id) == 16
        for index, p in enumerate(topic.partitions):
            assert p.index == index and p.segments
            for i, seg in enumerate(p.segments):
                assert seg.epoch == i
                holders = [*seg.replicas, *seg.copying]
                assert len(set(holders)) == len(holders)
                assert len(holders) <= topic.replication_factor
                if seg.end_offset is None:
                    assert seg.leader in seg.replicas and not seg.copying
                # A sealed segment's replicas are the nodes holding it: its leader may
                # have been removed since (PlanCopies then finds it a new holder).
                if i + 1 < len(p.segments):
                    assert seg.end_offset is not None and seg.base_offset <= seg.end_offset
                    assert p.segments[i + 1].base_offset == seg.end_offset
                    assert seg.lease_holder is None
            assert p.active.end_offset is None
    for group, committed in state.offsets.items():
        assert committed, f"empty group {group} kept"
        for topic, partition in committed:
            assert state.partition(topic, partition) is not None
    assert state.next_producer_id % PRODUCER_ID_BLOCK_SIZE == 0
    for (user, mechanism), credential in state.scram_credentials().items():
        assert credential_problem(user, mechanism, credential) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_invariants_hold_and_refusals_change_nothing(sequence: list[tuple[object, int]]) -> None:
    state = ClusterState()
    now = 1_000_000
    # a populated cluster to start from, so most generated commands have something to act on
    setup: list[object] = [RegisterBroker(n, "127.0.0.1", 9090 + n) for n in (1, 2, 3)]
    setup += [CreateTopic("a", bytes([1]) * 16, 3, 2), CreateTopic("b", bytes([2]) * 16, 1, 1)]
    for command in setup:
        assert not isinstance(state.apply(command, now), Refusal)  # type: ignore[arg-type]
    for command, advance in sequence:
        now += advance
        before = json.loads(state.to_snapshot())
        version = state.version
        result = state.apply(command, now)  # type: ignore[arg-type]
        after = json.loads(state.to_snapshot())
        if isinstance(result, Refusal):
            before["clock_ms"] = after["clock_ms"]
            assert after == before, result
        else:
            assert state.version == version + 1
        check_invariants(state)
    assert ClusterState.from_snapshot(state.to_snapshot()).to_snapshot() == state.to_snapshot()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(COMMAND_TYPES)), st.data())
def test_commands_with_fields_of_any_type_are_applied_or_refused_cleanly(
    kind: str, data: st.DataObject
) -> None:
    """A decoded entry with nonsense field values never raises, and a refusal never
    leaves half a change behind."""
    state = ClusterState()
    now = 1_000_000
    for n in (1, 2):
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n), now)
    state.apply(CreateTopic("a", bytes([1]) * 16, 2, 2), now)
    state.apply(CommitOffsets("g1", [OffsetEntry("a", 0, 1)]), now)
    fields = [f.name for f in dataclasses.fields(COMMAND_TYPES[kind])]
    raw = {"kind": kind, **{name: data.draw(json_values, label=name) for name in fields}}
    before = json.loads(state.to_snapshot())
    result = state.apply(raw, now)
    if isinstance(result, Refusal):
        assert json.loads(state.to_snapshot()) == before
    ClusterState.from_snapshot(state.to_snapshot())
