"""Shared pieces for the group coordinator tests: a consumer-like member driver."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription

from broker.groups import (
    ErrorCode,
    GroupConfig,
    GroupCoordinator,
    HeartbeatResult,
    InMemoryOffsetStore,
    JoinResult,
    OffsetStore,
    SyncResult,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run one test's coroutine on a fresh loop, failing rather than hanging, and failing
    on any exception the loop swallowed (timer callbacks, forgotten tasks)."""
    swallowed: list[dict[str, Any]] = []

    async def guarded() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: swallowed.append(ctx))
        return await asyncio.wait_for(coro, timeout)

    result = asyncio.run(guarded())
    assert not swallowed, f"the event loop swallowed errors: {swallowed}"
    return result


def fast_config(**overrides: int) -> GroupConfig:
    settings: dict[str, int] = {
        "initial_rebalance_delay_ms": 30,
        "min_session_timeout_ms": 10,
        "new_member_join_timeout_ms": 5000,
    }
    settings.update(overrides)
    return GroupConfig(**settings)


async def started(store: OffsetStore | None = None, **config: int) -> GroupCoordinator:
    coordinator = GroupCoordinator(
        store if store is not None else InMemoryOffsetStore(), fast_config(**config)
    )
    await coordinator.start()
    return coordinator


def subscription(*topics: str, version: int = 0) -> bytes:
    """ConsumerProtocolSubscription bytes as a real client (kafka-python) encodes them."""
    return ConsumerProtocolSubscription(
        version=version, topics=sorted(topics), user_data=b"", owned_partitions=[]
    ).encode()


@dataclass
class Consumer:
    """Drives the coordinator the way a consumer's group client does."""

    coordinator: GroupCoordinator
    group_id: str
    client_id: str = "client"
    instance_id: str | None = None
    protocol_type: str = "consumer"
    protocols: list[tuple[str, bytes]] = field(
        default_factory=lambda: [("range", subscription("topic"))]
    )
    session_timeout_ms: int = 2000
    rebalance_timeout_ms: int = 2000
    member_id: str = ""
    generation_id: int = -1
    last_join: JoinResult | None = None
    assignment: bytes | None = None

    async def join(self, *, require_known_member_id: bool = True) -> JoinResult:
        result = await self._join_once(require_known_member_id)
        if result.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = result.member_id
            result = await self._join_once(require_known_member_id)
        if result.error_code == ErrorCode.NONE:
            self.member_id = result.member_id
            self.generation_id = result.generation_id
            self.last_join = result
        return result

    async def _join_once(self, require_known_member_id: bool) -> JoinResult:
        return await self.coordinator.join(
            self.group_id,
            self.member_id,
            protocol_type=self.protocol_type,
            protocols=self.protocols,
            session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            group_instance_id=self.instance_id,
            client_id=self.client_id,
            client_host="/127.0.0.1",
            require_known_member_id=require_known_member_id,
        )

    @property
    def is_leader(self) -> bool:
        return self.last_join is not None and self.last_join.leader == self.member_id

    async def sync(self, assignments: dict[str, bytes] | None = None) -> SyncResult:
        if assignments is None and self.is_leader and self.last_join is not None:
            assignments = {
                m.member_id: f"for {m.member_id}".encode() for m in self.last_join.members
            }
        result = await self.coordinator.sync(
            self.group_id,
            self.generation_id,
            self.member_id,
            assignments=assignments,
            group_instance_id=self.instance_id,
        )
        if result.error_code == ErrorCode.NONE:
            self.assignment = result.assignment
        return result

    async def heartbeat(self) -> HeartbeatResult:
        return await self.coordinator.heartbeat(
            self.group_id, self.generation_id, self.member_id, group_instance_id=self.instance_id
        )

    async def join_and_sync(self) -> tuple[JoinResult, SyncResult]:
        joined = await self.join()
        assert joined.error_code == ErrorCode.NONE, joined
        synced = await self.sync()
        return joined, synced


async def form_group(consumers: Sequence[Consumer]) -> list[tuple[JoinResult, SyncResult]]:
    """All consumers join and sync concurrently, as a fleet starting together does."""
    return list(await asyncio.gather(*(c.join_and_sync() for c in consumers)))


async def keep_heartbeating(consumer: Consumer, every_s: float, seen: list[int]) -> None:
    """Heartbeat until cancelled, recording each error code."""
    while True:
        seen.append((await consumer.heartbeat()).error_code)
        await asyncio.sleep(every_s)


async def sync_all(consumers: Sequence[Consumer]) -> list[SyncResult]:
    """Every consumer that joined sends SyncGroup, concurrently."""
    return list(await asyncio.gather(*(c.sync() for c in consumers)))
