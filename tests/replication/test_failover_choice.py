"""Which node takes over a dead leader's segment, and when (replication/failover_choice.py):
a ClusterState driven by commands on a fake clock, no processes."""

from __future__ import annotations

import pytest

from broker.coordination.commands import (
    BrokerHeartbeat,
    CreateTopic,
    RegisterBroker,
    RenewLease,
    UpdateIsr,
)
from broker.coordination.results import LeaseGranted
from broker.coordination.state import ClusterState
from broker.replication.failover_choice import (
    RaftLeaderWatch,
    TakeOver,
    next_judgement_ms,
    nodes_at,
    segments_to_take_over,
)

pytestmark = pytest.mark.unit

T0 = 1_000_000
LEASE_MS = 1000


def _cluster(*, node_leases: bool = True) -> ClusterState:
    """Nodes 1-4; topic t, one partition led by 1 with replicas [1, 2, 3] all in sync."""
    state = ClusterState()
    for n in range(1, 5):
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n), T0)
        state.apply(BrokerHeartbeat(n, T0 + LEASE_MS if node_leases else None), T0)
    state.apply(CreateTopic("t", (1).to_bytes(16, "big"), assignments=[[1, 2, 3]]), T0)
    assert state.partition("t", 0).active.in_sync == [1, 2, 3]  # type: ignore[union-attr]
    return state


def _beat(state: ClusterState, at: int, *nodes: int, node_leases: bool = True) -> None:
    for n in nodes:
        state.apply(BrokerHeartbeat(n, at + LEASE_MS if node_leases else None), at)


def test_while_the_leader_holds_its_node_lease_nobody_takes_over() -> None:
    state = _cluster()
    _beat(state, T0 + 500, 1, 2, 3)
    assert segments_to_take_over(2, state, T0 + 1400) == []


def test_once_its_lease_lapses_the_lowest_live_in_sync_follower_takes_over() -> None:
    state = _cluster()
    _beat(state, T0 + 900, 2, 3, 4)  # node 1 is silent
    at = T0 + LEASE_MS + 1
    assert segments_to_take_over(2, state, at) == [TakeOver("t", 0, 0, (3,))]
    assert segments_to_take_over(3, state, at) == [], "only one node proposes"
    assert segments_to_take_over(4, state, at) == [], "node 4 holds no copy"


def test_a_dead_lowest_follower_leaves_it_to_the_next() -> None:
    state = _cluster(node_leases=False)
    timeout = state.session_timeout_ms()
    _beat(state, T0 + timeout - 100, 3, 4, node_leases=False)  # 1 and 2 fall silent
    at = T0 + timeout + 1
    assert segments_to_take_over(2, state, at) == []  # it is dead itself: not live in sync
    assert segments_to_take_over(3, state, at) == [TakeOver("t", 0, 0, ())]


def test_a_follower_out_of_the_in_sync_set_never_takes_over() -> None:
    # It may lack acknowledged records; sealing at its end would lose them.
    state = _cluster()
    state.apply(UpdateIsr("t", 0, 0, 1, [1, 3]), T0 + 100)
    _beat(state, T0 + 900, 2, 3)
    at = T0 + LEASE_MS + 1
    assert segments_to_take_over(2, state, at) == []
    assert segments_to_take_over(3, state, at) == [TakeOver("t", 0, 0, ())]


def test_a_segment_lease_outlives_the_node_lease() -> None:
    # Without node leases, a leader writes under a lease on the segment itself; it is
    # not replaced before that lease ends, even when its session has lapsed.
    state = _cluster(node_leases=False)
    timeout = state.session_timeout_ms()
    granted = state.apply(RenewLease("t", 0, 0, 1, T0 + 2 * timeout), T0 + timeout - 10)
    assert isinstance(granted, LeaseGranted), granted
    _beat(state, T0 + timeout - 50, 2, 3, node_leases=False)
    assert segments_to_take_over(2, state, T0 + timeout + 100) == []
    _beat(state, T0 + 2 * timeout - 50, 2, 3, node_leases=False)
    assert segments_to_take_over(2, state, T0 + 2 * timeout - 1) == []
    assert segments_to_take_over(2, state, T0 + 2 * timeout) == [TakeOver("t", 0, 0, (3,))]


def test_the_leader_itself_never_takes_over_its_own_segment() -> None:
    state = _cluster()
    assert segments_to_take_over(1, state, T0 + 10 * LEASE_MS) == []


def test_nothing_is_judged_until_one_raft_leader_has_held_for_the_settle_time() -> None:
    watch = RaftLeaderWatch(0.5)
    assert not watch.settled(None, 1, 10.0)
    assert not watch.settled("a:1", 1, 10.1)
    assert not watch.settled("a:1", 1, 10.5)
    assert watch.settled("a:1", 1, 10.6)
    assert not watch.settled("b:2", 2, 10.7), "a new leader starts the wait again"
    assert watch.settled("b:2", 2, 11.2)


def test_an_election_the_same_leader_wins_again_starts_the_wait_again() -> None:
    """The failover may never see the leaderless moment (it lasted a few milliseconds,
    between two of its looks); the new term alone says an election happened, and with it
    a time when no lease could be renewed."""
    watch = RaftLeaderWatch(0.5)
    watch.settled("a:1", 1, 10.0)
    assert watch.settled("a:1", 1, 10.5)
    assert not watch.settled("a:1", 3, 10.6)
    assert watch.lost == frozenset(), "the leader that won again was not lost"
    assert watch.settled("a:1", 3, 11.1)


def test_a_stall_in_the_entries_starts_the_wait_again() -> None:
    """A Raft leader stalled short of an election, or this node's own loop stalled: no
    lease was renewed meanwhile, and lapses seen now say nothing about who is dead."""
    watch = RaftLeaderWatch(0.5, stall_s=0.5)
    watch.settled("a:1", 1, 10.0)
    for t in (10.0, 10.2, 10.4, 10.6):
        assert not watch.entry_applied(t)
    assert watch.settled("a:1", 1, 10.6)
    assert not watch.settled("a:1", 1, 11.2), "nothing has arrived for 0.6 s: a stall under way"
    assert watch.settles_in_s(11.2) == 0.5
    assert watch.entry_applied(11.3), "the first entry after the stall"
    assert not watch.settled("a:1", 1, 11.4)
    assert watch.settles_in_s(11.4) == pytest.approx(0.4)
    watch.entry_applied(11.6)
    assert watch.settled("a:1", 1, 11.8)


def test_without_a_stall_time_only_leader_changes_unsettle() -> None:
    watch = RaftLeaderWatch(0.5)
    watch.settled("a:1", 1, 10.0)
    watch.entry_applied(10.0)
    assert not watch.entry_applied(20.0)
    assert watch.settled("a:1", 1, 30.0)


def test_the_next_look_is_due_when_the_leaders_node_lease_runs_out() -> None:
    """The failover sleeps until then instead of polling: at that moment, and not one
    millisecond before, the segment becomes node 2's to take over."""
    state = _cluster()
    _beat(state, T0 + 300, 1, 2, 3)
    due = next_judgement_ms(2, state, T0 + 400)
    assert due == T0 + 300 + LEASE_MS
    assert segments_to_take_over(2, state, due - 1) == []
    assert segments_to_take_over(2, state, due) == [TakeOver("t", 0, 0, (3,))]
    # A heartbeat applied meanwhile only postpones it.
    _beat(state, T0 + 900, 1)
    assert next_judgement_ms(2, state, T0 + 950) == T0 + 900 + LEASE_MS


def test_the_next_look_includes_a_lower_followers_death() -> None:
    """Node 3 follows in sync behind node 2: it must look again when node 2 may die,
    since it then chooses (sessions without node leases)."""
    state = _cluster(node_leases=False)
    timeout = state.session_timeout_ms()
    _beat(state, T0 + 100, 2, node_leases=False)
    _beat(state, T0 + 500, 1, 3, node_leases=False)
    assert next_judgement_ms(3, state, T0 + 600) == T0 + 100 + timeout
    assert next_judgement_ms(2, state, T0 + 600) == T0 + 500 + timeout, "node 2 waits on node 1 alone"


def test_nothing_to_look_at_on_a_node_that_follows_nothing_in_sync() -> None:
    state = _cluster()
    assert next_judgement_ms(4, state, T0 + 10) is None
    assert next_judgement_ms(1, state, T0 + 10) is None, "the leader never takes itself over"


def test_the_raft_leader_watch_says_how_long_until_it_settles() -> None:
    watch = RaftLeaderWatch(0.5)
    assert not watch.settled("a", 1, 10.0)
    assert watch.settles_in_s(10.2) == pytest.approx(0.3)
    assert watch.settled("a", 1, 10.5) and watch.settles_in_s(10.6) == 0.0


def test_the_lost_raft_leaders_are_remembered_until_one_has_settled() -> None:
    watch = RaftLeaderWatch(0.5)
    watch.settled("a:1", 1, 1.0)
    assert watch.lost == frozenset()
    watch.settled(None, 2, 2.0)  # the election
    watch.settled("b:2", 2, 2.1)
    assert watch.lost == {"a:1"}
    watch.settled("c:3", 3, 2.2)  # one that lasted a moment, then the one that stays
    assert watch.lost == {"a:1", "b:2"}
    watch.settled(None, 4, 2.3)
    watch.settled("a:1", 4, 2.4)  # back: alive after all
    assert watch.lost == {"b:2", "c:3"}
    assert watch.settled("a:1", 4, 2.9)
    assert watch.lost == frozenset(), "once settled, every lease is judged anyway"


def test_while_raft_settles_only_the_lost_raft_leaders_segments_are_judged() -> None:
    """Every lease may lapse in an election; only the node the election replaced is
    judged at once, the others get the settle time to renew."""
    state = ClusterState()
    for n in range(1, 5):
        state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n, raft_address=f"127.0.0.1:{7000 + n}"), T0)
        state.apply(BrokerHeartbeat(n, T0 + LEASE_MS), T0)
    state.apply(CreateTopic("t", (1).to_bytes(16, "big"), assignments=[[1, 2, 3], [4, 2, 3]]), T0)
    at = T0 + LEASE_MS + 500  # everyone's lease lapsed: nothing committed meanwhile
    lost = nodes_at(state, frozenset({"127.0.0.1:7001"}))
    assert lost == frozenset({1})
    assert segments_to_take_over(2, state, at, only_leaders=lost) == [TakeOver("t", 0, 0, (3,))]
    assert len(segments_to_take_over(2, state, at)) == 2, "both, once settled"
    assert nodes_at(state, frozenset()) == frozenset()
