"""OffsetCommit and OffsetFetch through the coordinator, and groups rebuilt on restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import pytest

from broker.groups import (
    ErrorCode,
    GroupCoordinator,
    GroupState,
    InMemoryOffsetStore,
    OffsetAndMetadata,
    OffsetStoreError,
    TopicPartition,
)

from .support import Consumer, fast_config, form_group, run, started

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

T0 = TopicPartition("orders", 0)
T1 = TopicPartition("orders", 1)


def test_group_member_commits_with_its_generation_and_fetches_back_offsets_and_metadata():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await form_group(consumers)
        member = consumers[0]
        result = await coordinator.commit_offsets(
            "g",
            {T0: OffsetAndMetadata(42, leader_epoch=3, metadata="checkpoint 日本")},
            member_id=member.member_id,
            generation_id=1,
        )
        assert result.errors == {T0: ErrorCode.NONE}
        fetched = await coordinator.fetch_offsets("g", [T1, T0])
        assert fetched.error_code == ErrorCode.NONE
        assert list(fetched.partitions) == [T1, T0]
        assert fetched.partitions[T0].offset == 42
        assert fetched.partitions[T0].leader_epoch == 3
        assert fetched.partitions[T0].metadata == "checkpoint 日本"
        assert fetched.partitions[T0].error_code == ErrorCode.NONE
        # Never committed: -1, no metadata, no error.
        assert (fetched.partitions[T1].offset, fetched.partitions[T1].metadata) == (-1, "")
        assert fetched.partitions[T1].error_code == ErrorCode.NONE

        stale = await coordinator.commit_offsets(
            "g", {T0: OffsetAndMetadata(50)}, member_id=member.member_id, generation_id=0
        )
        assert stale.errors == {T0: ErrorCode.ILLEGAL_GENERATION}
        stranger = await coordinator.commit_offsets(
            "g", {T0: OffsetAndMetadata(50)}, member_id="stranger", generation_id=1
        )
        assert stranger.errors == {T0: ErrorCode.UNKNOWN_MEMBER_ID}
        # A simple (generation -1) commit is refused while the group has members.
        simple = await coordinator.commit_offsets("g", {T0: OffsetAndMetadata(50)})
        assert simple.errors == {T0: ErrorCode.UNKNOWN_MEMBER_ID}
        assert (await coordinator.fetch_offsets("g", [T0])).partitions[T0].offset == 42

    run(scenario())


def test_commits_are_refused_while_completing_a_rebalance_and_allowed_while_preparing_one():
    async def scenario() -> None:
        coordinator = await started()
        consumers = [Consumer(coordinator, "g", client_id=f"c{i}") for i in range(2)]
        await asyncio.gather(*(c.join() for c in consumers))
        member = consumers[0]
        completing = await coordinator.commit_offsets(
            "g", {T0: OffsetAndMetadata(1)}, member_id=member.member_id, generation_id=1
        )
        assert completing.errors == {T0: ErrorCode.REBALANCE_IN_PROGRESS}
        await asyncio.gather(*(c.sync() for c in consumers))

        leader = next(c for c in consumers if c.is_leader)
        follower = next(c for c in consumers if not c.is_leader)
        rejoin = asyncio.ensure_future(leader.join())
        await asyncio.sleep(0.02)
        assert coordinator.group("g").state is GroupState.PREPARING_REBALANCE  # type: ignore[union-attr]
        # Before rejoining, a member may commit what it has processed so far.
        preparing = await coordinator.commit_offsets(
            "g", {T0: OffsetAndMetadata(2)}, member_id=follower.member_id, generation_id=1
        )
        assert preparing.errors == {T0: ErrorCode.NONE}
        await asyncio.gather(rejoin, follower.join())

    run(scenario())


def test_simple_commits_from_outside_any_group_create_an_empty_group():
    async def scenario() -> None:
        coordinator = await started()
        result = await coordinator.commit_offsets("standalone", {T0: OffsetAndMetadata(7)})
        assert result.errors == {T0: ErrorCode.NONE}
        group = coordinator.group("standalone")
        assert group is not None and group.state is GroupState.EMPTY
        assert (await coordinator.fetch_offsets("standalone", [T0])).partitions[T0].offset == 7
        # A generation the coordinator never formed is refused outright.
        made_up = await coordinator.commit_offsets(
            "unheard-of", {T0: OffsetAndMetadata(7)}, member_id="m", generation_id=3
        )
        assert made_up.errors == {T0: ErrorCode.ILLEGAL_GENERATION}
        assert coordinator.group("unheard-of") is None
        # OffsetCommit v9+ says so plainly.
        v9 = await coordinator.commit_offsets(
            "unheard-of",
            {T0: OffsetAndMetadata(7)},
            member_id="m",
            generation_id=3,
            unknown_group_is_not_found=True,
        )
        assert v9.errors == {T0: ErrorCode.GROUP_ID_NOT_FOUND}

    run(scenario())


def test_oversized_metadata_is_refused_per_partition():
    async def scenario() -> None:
        coordinator = await started(offset_metadata_max_bytes=10)
        result = await coordinator.commit_offsets(
            "g",
            {
                T0: OffsetAndMetadata(1, metadata="x" * 11),
                T1: OffsetAndMetadata(2, metadata="x" * 10),
            },
        )
        assert result.errors == {T0: ErrorCode.OFFSET_METADATA_TOO_LARGE, T1: ErrorCode.NONE}
        fetched = await coordinator.fetch_offsets("g", None)
        assert list(fetched.partitions) == [T1]

    run(scenario())


def test_default_metadata_limit_is_kafkas_4096():
    async def scenario() -> None:
        coordinator = GroupCoordinator(InMemoryOffsetStore())
        await coordinator.start()
        result = await coordinator.commit_offsets(
            "g",
            {
                T0: OffsetAndMetadata(1, metadata="m" * 4096),
                T1: OffsetAndMetadata(1, metadata="m" * 4097),
            },
        )
        assert result.errors == {T0: ErrorCode.NONE, T1: ErrorCode.OFFSET_METADATA_TOO_LARGE}

    run(scenario())


def test_fetch_of_all_partitions_lists_every_commit_in_order():
    async def scenario() -> None:
        coordinator = await started()
        other = TopicPartition("audit", 3)
        await coordinator.commit_offsets(
            "g", {T1: OffsetAndMetadata(11), other: OffsetAndMetadata(5)}
        )
        await coordinator.commit_offsets("g", {T0: OffsetAndMetadata(10)})
        fetched = await coordinator.fetch_offsets("g", None)
        assert [(tp, f.offset) for tp, f in fetched.partitions.items()] == [
            (other, 5),
            (T0, 10),
            (T1, 11),
        ]
        assert (await coordinator.fetch_offsets("nobody", None)).partitions == {}

    run(scenario())


class GatedStore(InMemoryOffsetStore):
    """Holds every commit until the test opens the gate, like a slow Raft write."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def commit(
        self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, int]:
        await self.gate.wait()
        return await super().commit(group, offsets)


def test_require_stable_fetch_reports_commits_still_being_written():
    async def scenario() -> None:
        store = GatedStore()
        coordinator = await started(store)
        store.gate.set()
        await coordinator.commit_offsets("g", {T0: OffsetAndMetadata(1)})
        store.gate.clear()
        in_flight = asyncio.ensure_future(
            coordinator.commit_offsets("g", {T0: OffsetAndMetadata(2)})
        )
        await asyncio.sleep(0.01)
        stable = await coordinator.fetch_offsets("g", [T0, T1], require_stable=True)
        assert stable.partitions[T0].error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
        assert stable.partitions[T0].offset == -1
        assert stable.partitions[T1].error_code == ErrorCode.NONE
        relaxed = await coordinator.fetch_offsets("g", [T0])
        assert (relaxed.partitions[T0].offset, relaxed.partitions[T0].error_code) == (1, 0)
        store.gate.set()
        assert (await in_flight).errors == {T0: ErrorCode.NONE}
        after = await coordinator.fetch_offsets("g", [T0], require_stable=True)
        assert (after.partitions[T0].offset, after.partitions[T0].error_code) == (2, 0)

    run(scenario())


class FailingStore(InMemoryOffsetStore):
    async def commit(
        self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, int]:
        raise OffsetStoreError("lost leadership of the metadata", ErrorCode.NOT_COORDINATOR)

    async def fetch(
        self, group: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        raise OffsetStoreError("metadata unavailable")


def test_store_failures_become_the_errors_clients_retry_on():
    async def scenario() -> None:
        coordinator = await started(FailingStore())
        result = await coordinator.commit_offsets(
            "g", {T0: OffsetAndMetadata(1), T1: OffsetAndMetadata(2, metadata="x" * 5000)}
        )
        assert result.errors == {
            T0: ErrorCode.NOT_COORDINATOR,
            T1: ErrorCode.OFFSET_METADATA_TOO_LARGE,
        }
        fetched = await coordinator.fetch_offsets("g", [T0])
        assert fetched.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE

    run(scenario())


def test_groups_come_back_as_last_stored_after_a_restart():
    async def scenario() -> None:
        store = InMemoryOffsetStore()
        first = await started(store)
        consumers = [Consumer(first, "active", client_id=f"c{i}") for i in range(2)]
        await form_group(consumers)
        await first.commit_offsets(
            "active",
            {T0: OffsetAndMetadata(100, metadata="m")},
            member_id=consumers[0].member_id,
            generation_id=1,
        )
        await first.commit_offsets("simple", {T1: OffsetAndMetadata(5)})
        await first.close()

        second = GroupCoordinator(store, fast_config())
        not_ready = await second.fetch_offsets("active", [T0])
        assert not_ready.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        assert second.list_groups().error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        await second.start()
        listed = {g.group_id: g.group_state for g in second.list_groups().groups}
        # The group with members resumes its generation; offsets alone make an Empty one.
        assert listed == {"active": "Stable", "simple": "Empty"}
        fetched = await second.fetch_offsets("active", [T0])
        assert (fetched.partitions[T0].offset, fetched.partitions[T0].metadata) == (100, "m")
        # The closed coordinator serves nobody; the new one knows the old generation.
        assert (await consumers[0].heartbeat()).error_code == ErrorCode.NOT_COORDINATOR
        consumers[0].coordinator = second
        assert (await consumers[0].heartbeat()).error_code == ErrorCode.NONE
        await second.close()

    run(scenario())
