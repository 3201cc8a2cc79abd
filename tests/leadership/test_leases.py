"""Write fencing: the lease keeper against the real metadata state machine, with a
clock the test moves (wall and monotonic apart, as they are after an NTP step)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from broker.cluster_tuning import ClusterTuning, TuningError
from broker.config import BrokerConfig, ConfigError, validate
from broker.coordination.commands import CreateTopic, RegisterBroker, RenewLease, RollSegment
from broker.coordination.state import ClusterState
from broker.leadership.leases import LeaseKeeper

pytestmark = pytest.mark.unit

TUNING = ClusterTuning(lease_ms=1000, lease_renew_interval_ms=300, lease_safety_margin_ms=100)


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_000_000
        self.mono = 50_000

    def advance(self, ms: int) -> None:
        self.wall += ms
        self.mono += ms


class Metadata:
    """The real ClusterState, applying each proposal at the wall clock of its arrival;
    `delay_ms` is how long a proposal takes to commit (the clocks move meanwhile)."""

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.state = ClusterState()
        self.delay_ms = 0
        self.proposals: list[Any] = []
        for n in (1, 2):
            self.state.apply(RegisterBroker(n, "127.0.0.1", 9090 + n), clocks.wall)
        self.state.apply(CreateTopic("t", (1).to_bytes(16, "big"), 1, 1), clocks.wall)

    async def propose(self, command: Any) -> Any:
        self.proposals.append(command)
        await asyncio.sleep(0)
        self.clocks.advance(self.delay_ms)
        return self.state.apply(command, self.clocks.wall)

    def leader(self) -> int:
        active = self.state.active_segment("t", 0)
        assert active is not None
        return active.leader


def _keeper(clocks: Clocks, metadata: Metadata, node_id: int | None = None) -> LeaseKeeper:
    return LeaseKeeper(metadata.propose, metadata.leader() if node_id is None else node_id, TUNING,
                       wall=lambda: clocks.wall, monotonic=lambda: clocks.mono)


def test_a_granted_lease_holds_until_its_safety_margin_then_renews_once() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    keeper = _keeper(clocks, metadata)
    assert not keeper.holds("t", 0, 0)
    assert asyncio.run(keeper.acquire("t", 0, 0))
    active = metadata.state.active_segment("t", 0)
    assert active is not None and active.lease_expiry_ms == clocks.wall + 1000
    clocks.advance(899)
    assert keeper.holds("t", 0, 0)
    assert asyncio.run(keeper.acquire("t", 0, 0)) and len(metadata.proposals) == 1
    clocks.advance(1)
    assert not keeper.holds("t", 0, 0)
    assert asyncio.run(keeper.acquire("t", 0, 0)) and len(metadata.proposals) == 2
    assert not keeper.holds("t", 0, 1)


def test_the_lease_counts_from_the_renewal_sent_not_from_its_answer() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    metadata.delay_ms = 400
    keeper = _keeper(clocks, metadata)
    sent = clocks.mono
    assert asyncio.run(keeper.acquire("t", 0, 0))
    clocks.mono = sent + 899
    assert keeper.holds("t", 0, 0)
    clocks.mono = sent + 900
    assert not keeper.holds("t", 0, 0)


def test_a_wall_clock_stepped_back_does_not_extend_the_lease() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    keeper = _keeper(clocks, metadata)
    assert asyncio.run(keeper.acquire("t", 0, 0))
    clocks.wall -= 60_000
    clocks.mono += 950
    assert not keeper.holds("t", 0, 0)


def test_a_refused_renewal_gives_up_the_lease() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    keeper = _keeper(clocks, metadata)
    assert asyncio.run(keeper.acquire("t", 0, 0))
    # Another node rolled the segment: this leader's epoch is fenced.
    metadata.state.apply(RollSegment("t", 0, 0, 10), clocks.wall)
    clocks.advance(950)
    assert not asyncio.run(keeper.acquire("t", 0, 0))
    assert not keeper.holds("t", 0, 0)
    other = _keeper(clocks, metadata, node_id=3 - metadata.leader())
    assert not asyncio.run(other.acquire("t", 0, 1))


def test_concurrent_writers_share_one_renewal() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    keeper = _keeper(clocks, metadata)

    async def writers() -> list[bool]:
        return list(await asyncio.gather(*(keeper.acquire("t", 0, 0) for _ in range(20))))

    assert asyncio.run(writers()) == [True] * 20
    assert len(metadata.proposals) == 1


def test_renewal_rounds_keep_written_partitions_leased_and_drop_idle_ones() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    keeper = _keeper(clocks, metadata)
    assert asyncio.run(keeper.acquire("t", 0, 0))
    for _ in range(3):
        clocks.advance(TUNING.lease_renew_interval_ms)
        asyncio.run(keeper.renew_due())
    assert keeper.holds("t", 0, 0)
    assert all(isinstance(p, RenewLease) for p in metadata.proposals) and len(metadata.proposals) == 4
    # Past the active window without a write: no more renewals, the lease lapses.
    clocks.advance(TUNING.active_window_ms)
    asyncio.run(keeper.renew_due())
    assert len(metadata.proposals) == 4
    assert not keeper.holds("t", 0, 0)


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"lease_ms": 0}, "lease_ms must be positive"),
    ({"lease_safety_margin_ms": -1}, "must not be negative"),
    ({"lease_ms": 500, "lease_safety_margin_ms": 500}, "must be below lease_ms"),
    ({"lease_ms": 1000, "lease_renew_interval_ms": 900}, "lapses between renewals"),
    ({"failover_check_interval_ms": 0}, "failover_check_interval_ms must be positive"),
    ({"node_leases": True, "lease_ms": 1000, "lease_renew_interval_ms": 300,
      "broker_heartbeat_interval_ms": 900}, "broker_heartbeat_interval_ms must be below"),
    ({"raft_election_timeout_min_ms": 100}, "must be at least 200"),
    ({"raft_election_timeout_min_ms": 900, "raft_election_timeout_max_ms": 900}, "the random spread"),
])
def test_timings_that_cannot_work_are_refused_at_start(settings: dict[str, Any], complaint: str) -> None:
    with pytest.raises(TuningError, match=complaint):
        ClusterTuning(**settings)
    with pytest.raises(ConfigError, match=complaint):
        validate(BrokerConfig(**settings))  # type: ignore[arg-type]


def test_the_timings_are_ordinary_settings() -> None:
    from broker.config import build_config

    config = build_config({}, environ={"WALRUS_LEASE_MS": "1500", "WALRUS_LEASE_RENEW_INTERVAL_MS": "400",
                                   "WALRUS_FAILOVER_CHECK_INTERVAL_MS": "100"})
    tuning = config.cluster_tuning()
    assert (tuning.lease_ms, tuning.lease_renew_interval_ms, tuning.failover_check_interval_ms) == (1500, 400, 100)


def test_a_node_lease_lets_every_led_segment_be_written_without_a_raft_entry_each() -> None:
    clocks = Clocks()
    metadata = Metadata(clocks)
    keeper = _keeper(clocks, metadata)
    keeper.node_lease_granted(clocks.mono + TUNING.lease_ms)
    assert asyncio.run(keeper.acquire("t", 0, 0)) and metadata.proposals == []
    # The renewal rounds leave partitions alone while the node lease covers them.
    clocks.advance(TUNING.lease_renew_interval_ms)
    asyncio.run(keeper.renew_due())
    assert metadata.proposals == []
    # Past its safety margin the node lease no longer counts: a write takes a segment
    # lease through Raft, as a node whose heartbeats fail must.
    clocks.advance(TUNING.lease_ms - TUNING.lease_safety_margin_ms - TUNING.lease_renew_interval_ms)
    assert not keeper.holds_node_lease()
    assert asyncio.run(keeper.acquire("t", 0, 0))
    assert [type(p) for p in metadata.proposals] == [RenewLease]
    # A late grant of an older beat never moves the deadline back.
    keeper.node_lease_granted(clocks.mono + TUNING.lease_ms)
    keeper.node_lease_granted(clocks.mono + TUNING.lease_safety_margin_ms)
    assert keeper.holds_node_lease()


def test_a_nodes_raft_members_take_the_election_timeouts_from_its_settings(tmp_path: Path) -> None:
    from node_runner import NodeRunner

    runner = NodeRunner(tmp_path / "data", raft_election_timeout_min_ms=300,
                        raft_election_timeout_max_ms=700)
    try:
        raft = runner.node.raft
        assert raft is not None
        assert (raft.tuning.election_timeout_min_s, raft.tuning.election_timeout_max_s) == (0.3, 0.7)
    finally:
        runner.close()
