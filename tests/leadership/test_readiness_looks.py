"""When LeadershipReadiness looks at which partitions (leadership/readiness.py): after
an entry about one partition, at that one; a full look whenever more moved than that."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from broker.coordination.commands import CreateTopic, RegisterBroker, RollSegment
from broker.coordination.state import ClusterState
from broker.leadership.readiness import LeadershipReadiness
from broker.log import LogConfig, LogManager
from broker.partitions.manager import ReplicaManager

pytestmark = pytest.mark.unit

T0 = 1_000_000


def test_a_look_at_one_partition_counts_as_seen_only_when_it_was_the_only_move(tmp_path: Path) -> None:
    state = ClusterState()
    state.apply(RegisterBroker(1, "127.0.0.1", 9091), T0)
    for n, name in enumerate(("a", "b"), start=1):
        state.apply(CreateTopic(name, n.to_bytes(16, "big"), assignments=[[1]]), T0)
    logs = LogManager(str(tmp_path), LogConfig())
    manager = ReplicaManager(logs, lambda topic: LogConfig())
    readiness = LeadershipReadiness(1, lambda: contextlib.nullcontext(state), lambda: manager, 10_000)
    try:
        assert readiness.catch_up() == 0  # new logs are at epoch 0 already
        epoch = lambda name: manager.get_or_open(name, 0).log.log.active_epoch  # noqa: E731

        # Both partitions roll (to this node again) before the first entry is followed.
        state.apply(RollSegment("a", 0, 0, 0), T0)
        state.apply(RollSegment("b", 0, 0, 0), T0)
        assert readiness.catch_up(only=("a", 0)) == 1
        assert (epoch("a"), epoch("b")) == (1, 0)
        assert readiness.catch_up(only=("b", 0)) == 1, "b's own entry still takes it"
        assert readiness.catch_up() == 0, "a full look found nothing left"

        # One more roll of b, and only it: its look counts, and no full look follows.
        state.apply(RollSegment("b", 0, 1, 0), T0)
        assert readiness.catch_up(only=("b", 0)) == 1 and epoch("b") == 2
        state.apply(RollSegment("a", 0, 1, 0), T0)
        state.apply(RollSegment("a", 0, 2, 0), T0)
        assert readiness.catch_up(only=("b", 0)) == 0
        assert readiness.catch_up() == 1 and epoch("a") == 3, "moves the look at b did not cover"
    finally:
        manager.close()
