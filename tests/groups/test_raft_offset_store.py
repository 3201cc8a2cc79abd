"""The coordinator on offsets kept in a real one-member MetadataRaft (pysyncobj)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from broker.coordination import ClusterState, MetadataRaft, RaftTuning
from broker.coordination.commands import CreateTopic, RegisterBroker
from broker.groups import (
    ErrorCode,
    GroupCoordinator,
    MemberIdentity,
    OffsetAndMetadata,
    TopicPartition,
)
from broker.groups.raft_store import RaftOffsetStore

from .support import Consumer, fast_config, form_group, run

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

FAST_RAFT = RaftTuning(election_timeout_min_s=0.2, election_timeout_max_s=0.4)
ORDERS0 = TopicPartition("orders", 0)
ORDERS1 = TopicPartition("orders", 1)
GHOST = TopicPartition("ghost", 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def open_raft(data_dir: Path, addr: str) -> MetadataRaft:
    raft = MetadataRaft(1, addr, [addr], data_dir, ClusterState(), FAST_RAFT)
    await raft.wait_ready(10)
    return raft


def test_offsets_committed_through_raft_survive_a_restart_and_bring_their_group_back(
    tmp_path: Path,
):
    addr = f"127.0.0.1:{free_port()}"

    async def first_life() -> None:
        raft = await open_raft(tmp_path, addr)
        try:
            await raft.propose(RegisterBroker(1, "127.0.0.1", 9092))
            await raft.propose(CreateTopic("orders", b"\x01" * 16, 2, 1))
            coordinator = GroupCoordinator(RaftOffsetStore(raft), fast_config())
            await coordinator.start()
            consumer = Consumer(coordinator, "g")
            await form_group([consumer])
            result = await coordinator.commit_offsets(
                "g",
                {
                    ORDERS0: OffsetAndMetadata(17, leader_epoch=2, metadata="m"),
                    ORDERS1: OffsetAndMetadata(4),
                    GHOST: OffsetAndMetadata(1),
                },
                member_id=consumer.member_id,
                generation_id=1,
            )
            assert result.errors == {
                ORDERS0: ErrorCode.NONE,
                ORDERS1: ErrorCode.NONE,
                GHOST: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            }
            fetched = await coordinator.fetch_offsets("g", [ORDERS0, GHOST])
            got = fetched.partitions[ORDERS0]
            assert (got.offset, got.leader_epoch, got.metadata) == (17, 2, "m")
            assert fetched.partitions[GHOST].offset == -1
            await coordinator.leave("g", [MemberIdentity(consumer.member_id)])
            await coordinator.close()
        finally:
            raft.close()

    async def second_life() -> None:
        raft = await open_raft(tmp_path, addr)
        try:
            coordinator = GroupCoordinator(RaftOffsetStore(raft), fast_config())
            await coordinator.start()
            assert [(g.group_id, g.group_state) for g in coordinator.list_groups().groups] == [
                ("g", "Empty")
            ]
            fetched = await coordinator.fetch_offsets("g", None)
            assert {tp: f.offset for tp, f in fetched.partitions.items()} == {
                ORDERS0: 17,
                ORDERS1: 4,
            }
            deleted = await coordinator.delete_offsets("g", [ORDERS1, GHOST])
            assert deleted.partitions == {
                ORDERS1: ErrorCode.NONE,
                GHOST: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            }
            assert await coordinator.delete_groups(["g"]) == {"g": ErrorCode.NONE}
            with raft.reading() as state:
                assert state.groups_with_offsets() == []
        finally:
            raft.close()

    run(first_life())
    run(second_life())


def test_a_closed_metadata_group_answers_commits_with_a_retriable_error(tmp_path: Path):
    async def scenario() -> None:
        raft = await open_raft(tmp_path, f"127.0.0.1:{free_port()}")
        coordinator = GroupCoordinator(RaftOffsetStore(raft, propose_timeout_s=0.5), fast_config())
        await coordinator.start()
        raft.close()
        result = await coordinator.commit_offsets("g", {ORDERS0: OffsetAndMetadata(1)})
        assert result.errors == {ORDERS0: ErrorCode.COORDINATOR_NOT_AVAILABLE}

    run(scenario())
