"""A one-member MetadataRaft in this process: the path every single-node broker takes."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.coordination import MetadataRaft, ProposalOutcomeUnknown, RaftTuning
from broker.coordination.commands import (
    CommitOffsets,
    CreateTopic,
    OffsetEntry,
    RegisterBroker,
    RollSegment,
)
from broker.coordination.errors import MetadataError, Refusal
from broker.coordination.results import BrokerRegistered, OffsetsResult, SegmentRolled
from broker.coordination.state import ClusterState

from .processes import free_port

pytestmark = pytest.mark.unit

FAST = RaftTuning(election_timeout_min_s=0.2, election_timeout_max_s=0.4)


def run(
    body: Callable[[MetadataRaft], Awaitable[Any]],
    data_dir: Path,
    addr: str | None = None,
    **tuning: Any,
) -> Any:
    """Start a one-member group on data_dir, run body against it, close it. A restart
    passes the same address: a member's address is its identity in the Raft config."""

    async def main() -> Any:
        nonlocal addr
        addr = addr or f"127.0.0.1:{free_port()}"
        conf = RaftTuning(**{**{f: getattr(FAST, f) for f in FAST.__slots__}, **tuning})
        raft = MetadataRaft(1, addr, [addr], data_dir, ClusterState(), conf)
        try:
            await raft.wait_ready(10)
            return await body(raft)
        finally:
            raft.close()

    return asyncio.run(main())


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_propose_returns_the_applied_result_and_refusals_as_values(tmp_path: Path) -> None:
    async def body(raft: MetadataRaft) -> None:
        assert raft.is_leader and raft.leader == raft.self_addr
        assert await raft.propose(RegisterBroker(1, "127.0.0.1", 9092)) == BrokerRegistered(1, 1)
        await raft.propose(CreateTopic("t", tid(1), 2, 1))
        again = await raft.propose(CreateTopic("t", tid(2), 2, 1))
        assert isinstance(again, Refusal) and again.error is MetadataError.TOPIC_ALREADY_EXISTS
        with raft.reading() as state:
            assert state.leader_for("t", 1) == 1
            assert state.version == 2

    run(body, tmp_path)


def test_state_survives_a_clean_restart(tmp_path: Path) -> None:
    async def write(raft: MetadataRaft) -> bytes:
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        await raft.propose(CreateTopic("t", tid(1), 1, 1))
        for i in range(50):
            await raft.propose(CommitOffsets("g", [OffsetEntry("t", 0, i)]))
        return raft.snapshot()

    async def read(raft: MetadataRaft) -> bytes:
        return raft.snapshot()

    addr = f"127.0.0.1:{free_port()}"
    before = run(write, tmp_path, addr)
    assert (tmp_path / "raft" / "journal").exists()
    assert run(read, tmp_path, addr) == before


def test_restart_after_log_compaction_loads_snapshot_then_journal(tmp_path: Path) -> None:
    async def write(raft: MetadataRaft) -> bytes:
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        await raft.propose(CreateTopic("t", tid(1), 1, 1))
        for i in range(30):
            await raft.propose(CommitOffsets("g", [OffsetEntry("t", 0, i)]))
        raft.force_log_compaction()
        for _ in range(200):
            if (raft.raft_dir / "snapshot").exists():
                break
            await asyncio.sleep(0.01)
        # entries after the snapshot live only in the journal
        await raft.propose(RollSegment("t", 0, 0, 77))
        return raft.snapshot()

    async def read(raft: MetadataRaft) -> bytes:
        with raft.reading() as state:
            active = state.active_segment("t", 0)
            assert active is not None and active.base_offset == 77
        return raft.snapshot()

    addr = f"127.0.0.1:{free_port()}"
    before = run(write, tmp_path, addr)
    assert (tmp_path / "raft" / "snapshot").exists()
    assert run(read, tmp_path, addr) == before


def test_readers_never_see_a_half_applied_state(tmp_path: Path) -> None:
    """A reader thread walks the whole state while the tick thread applies commands; under
    the read lock no walk may fail or see a partition without an active segment."""
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader(raft: MetadataRaft) -> None:
        while not stop.is_set():
            try:
                with raft.reading() as state:
                    for topic in state.topics.values():
                        for p in topic.partitions:
                            assert p.segments[-1].end_offset is None
            except BaseException as exc:
                failures.append(exc)
                return

    async def body(raft: MetadataRaft) -> int:
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        thread = threading.Thread(target=reader, args=(raft,))
        thread.start()
        # Switch threads as often as possible, so an unlocked reader would land inside
        # an apply almost surely.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            for i in range(40):
                await raft.propose(CreateTopic(f"t{i}", tid(i + 1), 8, 1))
                await asyncio.gather(
                    *(raft.propose(RollSegment(f"t{i}", p, 0, 10)) for p in range(8))
                )
        finally:
            sys.setswitchinterval(switch)
            stop.set()
            thread.join()
        with raft.reading() as state:
            return sum(len(p.segments) for t in state.topics.values() for p in t.partitions)

    assert run(body, tmp_path) == 40 * 8 * 2
    assert failures == []


def test_listeners_run_on_the_event_loop_after_each_entry(tmp_path: Path) -> None:
    async def body(raft: MetadataRaft) -> None:
        seen: list[tuple[str, object, bool]] = []
        loop_thread = threading.get_ident()
        raft.subscribe(
            lambda c, r: seen.append((c["kind"], r, threading.get_ident() == loop_thread))
        )
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        await raft.propose(CreateTopic("t", tid(1), 1, 1))
        result = await raft.propose(RollSegment("t", 0, 0, 5))
        await asyncio.sleep(0.05)
        assert [s[0] for s in seen] == ["register_broker", "create_topic", "roll_segment"]
        assert seen[-1][1] == result and isinstance(result, SegmentRolled)
        assert all(s[2] for s in seen)

    run(body, tmp_path)


@pytest.mark.parametrize("fsync_on_ack", [True, False])
def test_concurrent_offset_commits_all_apply_in_order(tmp_path: Path, fsync_on_ack: bool) -> None:
    async def body(raft: MetadataRaft) -> None:
        await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
        await raft.propose(CreateTopic("t", tid(1), 1, 1))
        results = await asyncio.gather(
            *(raft.propose(CommitOffsets("g", [OffsetEntry("t", 0, i)])) for i in range(500))
        )
        assert all(isinstance(r, OffsetsResult) and r.partitions[0].error is None for r in results)
        with raft.reading() as state:
            committed = state.committed_offset("g", "t", 0)
            # proposals from one task enter the log in submission order
            assert committed is not None and committed.offset == 499

    run(body, tmp_path, fsync_on_ack=fsync_on_ack)


def test_propose_without_a_quorum_times_out_with_unknown_outcome(tmp_path: Path) -> None:
    """A member whose peer never answers has no leader; the caller gets a typed error."""

    async def main() -> None:
        me, ghost = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        raft = MetadataRaft(1, me, [me, ghost], tmp_path, ClusterState(), FAST)
        try:
            with pytest.raises(ProposalOutcomeUnknown):
                await raft.propose(RegisterBroker(1, "127.0.0.1", 9092), timeout=0.5)
            assert not raft.is_leader and raft.leader is None
        finally:
            raft.close()

    asyncio.run(main())


@pytest.mark.parametrize("fsync_on_ack", [True, False])
def test_acknowledgement_waits_for_the_journal_fsync_only_when_asked(
    tmp_path: Path, fsync_on_ack: bool
) -> None:
    async def body(raft: MetadataRaft) -> None:
        synced_at: list[int] = []  # applied index at each fsync
        real_sync = raft._sync_to_disk

        def recording_sync() -> None:
            real_sync()
            synced_at.append(raft.applied_index)

        raft._sync_to_disk = recording_sync  # type: ignore[method-assign]
        for i in range(5):
            await raft.propose(RegisterBroker(1, "127.0.0.1", 9092 + i))
            covered = any(index >= raft.applied_index for index in synced_at)
            assert covered is fsync_on_ack, (i, synced_at, raft.applied_index)

    # a long interval keeps the timer fsync out of the way
    run(body, tmp_path, fsync_on_ack=fsync_on_ack, fsync_interval_s=60.0)
