"""Where a fetch is served (handlers/fetch_routing.py), decided from a ClusterState
driven by commands, a fake local copy and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker.coordination.commands import BrokerHeartbeat, CreateTopic, RegisterBroker, RollSegment
from broker.coordination.state import ClusterState
from broker.handlers.fetch_routing import route_fetch
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

T0 = 1_000_000
SEAL = 10  # epoch 0 holds [0, 10); epoch 1 is active from 10


@dataclass
class Copy:
    """What this node holds of epoch 0: [0, head) and whether all of it."""

    head: int = SEAL
    whole: bool = True

    def holds_sealed(self, epoch: int, base_offset: int, end_offset: int) -> bool:
        return epoch == 0 and self.whole

    def holds_offset(self, epoch: int, offset: int) -> bool:
        return epoch == 0 and offset < self.head


def _state(racks: dict[int, str] | None = None) -> ClusterState:
    """Nodes 1-3; t-0 with replicas [1, 2, 3]: epoch 0 written by 1 and sealed at SEAL,
    epoch 1 led by another of them."""
    state = ClusterState()
    for n in (1, 2, 3):
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n, rack=(racks or {}).get(n)), T0)
    state.apply(CreateTopic("t", (1).to_bytes(16, "big"), assignments=[[1, 2, 3]]), T0)
    state.apply(RollSegment("t", 0, 0, SEAL), T0)
    return state


def _leader(state: ClusterState) -> int:
    leader = state.leader_for("t", 0)
    assert leader is not None and leader != 1
    return leader


def test_an_unknown_partition() -> None:
    assert route_fetch(1, _state(), T0, "t", 7, 0).error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_the_active_segment_is_read_from_its_leader() -> None:
    state = _state()
    leader = _leader(state)
    me = ({1, 2, 3} - {leader}).pop()
    route = route_fetch(me, state, T0, "t", 0, SEAL + 3)
    assert (route.error, route.holder, route.leader, route.high_watermark) == (ErrorCode.NONE, leader, leader, SEAL)


def test_the_leader_checks_the_clients_leader_epoch() -> None:
    state = _state()
    leader = _leader(state)
    assert route_fetch(leader, state, T0, "t", 0, 12, current_leader_epoch=0).error == ErrorCode.FENCED_LEADER_EPOCH
    assert route_fetch(leader, state, T0, "t", 0, 12, current_leader_epoch=2).error == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert route_fetch(leader, state, T0, "t", 0, 12, current_leader_epoch=1).holder == leader
    # Another node asking is not a client: its request carries no epoch to check.
    assert route_fetch(leader, state, T0, "t", 0, 12, current_leader_epoch=0, local_only=True).error == ErrorCode.NONE


@pytest.mark.parametrize("local_only", [False, True])
def test_an_offset_below_the_first_segment_is_out_of_range_whoever_asks(local_only: bool) -> None:
    route = route_fetch(2, _state(), T0, "t", 0, -1, local_only=local_only)
    assert (route.error, route.high_watermark) == (ErrorCode.OFFSET_OUT_OF_RANGE, SEAL)


def test_a_sealed_segment_held_whole_here_is_read_here() -> None:
    route = route_fetch(3, _state(), T0, "t", 0, 4, copy=Copy())
    assert (route.error, route.holder, route.spare_holders) == (ErrorCode.NONE, 3, ())


def test_a_sealed_segment_not_held_here_is_read_from_its_writer_then_the_others() -> None:
    route = route_fetch(3, _state(), T0, "t", 0, 4, copy=None)
    assert (route.holder, route.spare_holders) == (1, (2,))


def test_the_head_of_a_segment_is_no_holder_of_the_rest() -> None:
    state = _state()
    head = Copy(head=5, whole=False)
    # Offsets it has: it stays a candidate, after the writer.
    at = route_fetch(3, state, T0, "t", 0, 4, copy=head)
    assert (at.holder, at.spare_holders) == (1, (2,))
    past = route_fetch(3, state, T0, "t", 0, 5, copy=head)
    assert (past.error, past.holder, past.spare_holders) == (ErrorCode.NONE, 1, (2,))
    # A node asking for offsets past it hears "not here", retriably, and tries a spare.
    asked = route_fetch(3, state, T0, "t", 0, 5, copy=head, local_only=True)
    assert asked.error == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_dead_holders_are_skipped_and_with_none_left_the_answer_is_retriable() -> None:
    state = _state()
    timeout = state.session_timeout_ms()
    later = T0 + timeout + 1
    state.apply(BrokerHeartbeat(2), T0 + timeout - 1)
    state.apply(BrokerHeartbeat(3), T0 + timeout - 1)
    route = route_fetch(3, state, later, "t", 0, 4, copy=None)
    assert (route.holder, route.spare_holders) == (2, ())  # node 1, its writer, is dead
    head = Copy(head=2, whole=False)
    state.apply(BrokerHeartbeat(3), T0 + 2 * timeout - 1)
    alone = route_fetch(3, state, T0 + 2 * timeout, "t", 0, 4, copy=head)
    assert alone.error == ErrorCode.NOT_LEADER_OR_FOLLOWER, "never out of range for an offset a dead copy has"


def test_a_consumer_in_another_rack_is_pointed_at_an_in_sync_follower_in_its_own() -> None:
    state = _state(racks={1: "a", 2: "b", 3: "c"})
    leader = _leader(state)
    follower = ({2, 3} - {leader}).pop() if leader != 1 else 2
    rack = state.brokers[follower].rack
    assert rack is not None
    at_leader = route_fetch(leader, state, T0, "t", 0, 12, client_rack=rack)
    assert (at_leader.holder, at_leader.preferred_replica) == (leader, follower)
    # The follower it is sent to serves it what it holds.
    at_follower = route_fetch(follower, state, T0, "t", 0, 12, client_rack=rack)
    assert at_follower.holder == follower
    # A consumer in the leader's own rack reads from the leader.
    same = route_fetch(leader, state, T0, "t", 0, 12, client_rack=state.brokers[leader].rack or "")
    assert same.preferred_replica == -1
