"""The event loop's copy of the applied metadata (coordination/applied_view.py), on real
MetadataRaft members in this process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.coordination import MetadataRaft, RaftTuning
from broker.coordination.applied_view import SNAPSHOT_KIND, AppliedMetadata, MetadataDelta
from broker.coordination.commands import (
    BrokerHeartbeat,
    CommitOffsets,
    CreatePartitions,
    CreateTopic,
    OffsetEntry,
    ReassignLeader,
    RegisterBroker,
    RollSegment,
    UnregisterBroker,
    UpdateIsr,
)
from broker.coordination.state import ClusterState

from .processes import free_port

pytestmark = pytest.mark.unit

FAST = RaftTuning(election_timeout_min_s=0.2, election_timeout_max_s=0.4)


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def run_one(body: Callable[[MetadataRaft, AppliedMetadata], Awaitable[Any]], data_dir: Path) -> Any:
    async def main() -> Any:
        addr = f"127.0.0.1:{free_port()}"
        raft = MetadataRaft(1, addr, [addr], data_dir, ClusterState(), FAST)
        view = AppliedMetadata()
        try:
            await raft.wait_ready(10)
            view.follow(raft)
            return await body(raft, view)
        finally:
            raft.close()

    return asyncio.run(main())


async def settled(raft: MetadataRaft, view: AppliedMetadata) -> None:
    """Until the loop has applied what the tick thread applied."""
    for _ in range(200):
        if view.state.to_snapshot() == raft.snapshot():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the loop's copy never caught up with the tick thread's")


def test_the_loop_copy_agrees_with_the_tick_threads_after_every_kind_of_change(tmp_path: Path) -> None:
    """Commands whose lists the state keeps (replica sets, in-sync sets, producer rows)
    and ones that change kept lists in place (a broker leaving every replica set) leave
    both copies equal: each copy decodes its own command."""

    async def body(raft: MetadataRaft, view: AppliedMetadata) -> None:
        for n in (1, 2, 3, 4):
            await raft.propose(RegisterBroker(n, "127.0.0.1", 9000 + n))
        await raft.propose(CreateTopic("a", tid(1), assignments=[[1, 2, 3], [2, 3, 1]]))
        await raft.propose(CreateTopic("b", tid(2), 3, 3))
        await raft.propose(CreatePartitions("a", 3, [[3, 1, 2]]))
        await raft.propose(UpdateIsr("a", 0, 0, 1, [1, 2]))
        await raft.propose(RollSegment("a", 0, 0, 10, producers=[[7, 0, 3, 0, 0]]))
        await raft.propose(ReassignLeader("a", 1, 0, 5, proposer=3))
        await raft.propose(BrokerHeartbeat(2, lease_until_ms=10**13))
        await raft.propose(UnregisterBroker(3))
        await raft.propose(CommitOffsets("g", [OffsetEntry("a", 0, 4)]))
        await settled(raft, view)

    run_one(body, tmp_path)


def test_a_proposer_reads_its_own_write_and_hears_its_delta_before_its_await_returns(
    tmp_path: Path,
) -> None:
    async def body(raft: MetadataRaft, view: AppliedMetadata) -> None:
        heard: list[MetadataDelta] = []
        view.subscribe(heard.append)
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        await raft.propose(CreateTopic("t", tid(1), 2, 1))
        assert view.state.leader_for("t", 1) == 1

        await raft.propose(RollSegment("t", 1, 0, 42))
        active = view.state.active_segment("t", 1)
        assert active is not None and (active.epoch, active.base_offset) == (1, 42)
        roll = heard[-1]
        assert (roll.kind, roll.scope, roll.refused, roll.topology_moved) == (
            "roll_segment", ("t", 1), False, True)
        assert roll.topology_version == view.state.topology_version

        await raft.propose(CommitOffsets("g", [OffsetEntry("t", 0, 3)]))
        commit = heard[-1]
        assert commit.kind == "commit_offsets" and commit.scope is None
        assert not commit.topology_moved and commit.version == view.state.version

        await raft.propose(RollSegment("t", 1, 0, 50))  # epoch 0 was sealed already
        stale = heard[-1]
        assert stale.refused and not stale.topology_moved
        assert [d.kind for d in heard].count("roll_segment") == 2

    run_one(body, tmp_path)


def test_reading_the_loop_copy_never_waits_for_the_raft_lock(tmp_path: Path) -> None:
    async def body(raft: MetadataRaft, view: AppliedMetadata) -> None:
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        await raft.propose(CreateTopic("t", tid(1), 1, 1))
        read: list[int | None] = []

        def reader() -> None:
            with view.reading() as state:
                read.append(state.leader_for("t", 0))

        with raft._lock:  # what the tick thread holds while it applies
            thread = threading.Thread(target=reader)
            thread.start()
            thread.join(5)
            assert not thread.is_alive(), "a reader of the loop's copy waited for the Raft lock"
        assert read == [1]

    run_one(body, tmp_path)


def test_a_member_that_installs_the_leaders_snapshot_installs_it_in_its_loop_copy_too(
    tmp_path: Path,
) -> None:
    """A member that was down while the others compacted their logs catches up from a
    snapshot, not from entries: its loop copy must hear of that too."""

    async def main() -> None:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        members = [
            MetadataRaft(n + 1, addrs[n], addrs, tmp_path / f"m{n + 1}", ClusterState(), FAST)
            for n in range(2)
        ]
        late: MetadataRaft | None = None
        try:
            await asyncio.gather(*(m.wait_ready(15) for m in members))
            for n in (1, 2, 3):
                await members[0].propose(RegisterBroker(n, "127.0.0.1", 9000 + n))
            await members[0].propose(CreateTopic("t", tid(1), 4, 2))
            for i in range(20):
                await members[0].propose(CommitOffsets("g", [OffsetEntry("t", i % 4, i)]))
            for m in members:
                m.force_log_compaction()
            for _ in range(500):
                if all((m.raft_dir / "snapshot").exists() for m in members):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("no member compacted its log")

            late = MetadataRaft(3, addrs[2], addrs, tmp_path / "m3", ClusterState(), FAST)
            view = AppliedMetadata()
            view.follow(late)
            heard: list[str] = []
            view.subscribe(lambda d: heard.append(d.kind))
            for _ in range(1000):
                if late.snapshot() == members[0].snapshot():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the late member never caught up")
            await settled(late, view)
            committed = view.state.committed_offset("g", "t", 3)
            assert committed is not None and committed.offset == 19
            assert SNAPSHOT_KIND in heard, f"the late member caught up without a snapshot: {heard}"
        finally:
            for m in [*members, *([late] if late is not None else [])]:
                m.close()

    asyncio.run(main())
