"""A fleet of consumers joining, crashing, leaving and restarting at random: the group's
bookkeeping stays consistent throughout, and once the churn stops the survivors settle
into one Stable generation with an assignment each."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from broker.groups import ErrorCode, GroupCoordinator, GroupState, MemberIdentity
from broker.groups.group import Group

from .support import Consumer, run, started, subscription

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

SESSION_MS = 250
REBALANCE_MS = 400
# More seeds for a longer soak: GROUP_CHURN_SEEDS=4,5,6 pytest tests/groups/test_group_churn.py
SEEDS = [int(s) for s in os.environ.get("GROUP_CHURN_SEEDS", "1,2,3").split(",")]
HEARTBEAT_S = 0.05


async def client_loop(consumer: Consumer, stop: asyncio.Event) -> None:
    """What a consumer's group client does: join, sync, heartbeat, rejoin when told."""
    while not stop.is_set():
        joined = await consumer.join()
        if joined.error_code == ErrorCode.FENCED_INSTANCE_ID:
            return
        if joined.error_code == ErrorCode.UNKNOWN_MEMBER_ID:
            consumer.member_id = ""
            continue
        if joined.error_code != ErrorCode.NONE:
            await asyncio.sleep(0.01)
            continue
        synced = await consumer.sync()
        if synced.error_code == ErrorCode.FENCED_INSTANCE_ID:
            return
        if synced.error_code == ErrorCode.UNKNOWN_MEMBER_ID:
            consumer.member_id = ""
        if synced.error_code != ErrorCode.NONE:
            continue
        while not stop.is_set():
            await asyncio.sleep(HEARTBEAT_S)
            beat = (await consumer.heartbeat()).error_code
            if beat == ErrorCode.NONE:
                continue
            if beat == ErrorCode.FENCED_INSTANCE_ID:
                return
            if beat == ErrorCode.UNKNOWN_MEMBER_ID:
                consumer.member_id = ""
            break


@dataclass
class Running:
    consumer: Consumer
    task: asyncio.Task[None]


def check_invariants(group: Group) -> None:
    members = group.members
    if members:
        assert group.leader_id in members
    for instance, member_id in group.static_members.items():
        assert members[member_id].group_instance_id == instance
    statics = [m.group_instance_id for m in members.values() if m.is_static]
    assert len(statics) == len(set(statics)) == len(group.static_members)
    assert group.pending_sync_members <= members.keys()
    assert not (group.pending_members & members.keys())
    if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
        assert members
        assert group.protocol_name is not None
    if group.state is GroupState.EMPTY:
        assert not members
    expected = Counter(name for m in members.values() for name in m.protocol_names())
    assert +group._supported_protocols == expected


async def churn(coordinator: GroupCoordinator, rng: random.Random, steps: int) -> list[Running]:
    stop = asyncio.Event()
    fleet: list[Running] = []
    counter = 0

    def launch(instance_id: str | None = None) -> None:
        nonlocal counter
        counter += 1
        topics = ["orders"] + (["audit"] if rng.random() < 0.3 else [])
        consumer = Consumer(
            coordinator,
            "g",
            client_id=f"c{counter}",
            instance_id=instance_id,
            protocols=[("range", subscription(*topics)), ("roundrobin", subscription(*topics))],
            session_timeout_ms=SESSION_MS,
            rebalance_timeout_ms=REBALANCE_MS,
        )
        fleet.append(Running(consumer, asyncio.ensure_future(client_loop(consumer, stop))))

    for i in range(3):
        launch(f"static-{i}" if i == 0 else None)
    for _ in range(steps):
        await asyncio.sleep(rng.uniform(0.03, 0.15))
        group = coordinator.group("g")
        if group is not None:
            check_invariants(group)
        live = [r for r in fleet if not r.task.done()]
        action = rng.choice(["start", "start_static", "crash", "leave", "restart_static"])
        if action == "start" or not live:
            launch()
        elif action == "start_static":
            launch(f"static-{rng.randrange(4)}")
        elif action == "crash":
            rng.choice(live).task.cancel()
        elif action == "leave":
            victim = rng.choice(live)
            victim.task.cancel()
            await coordinator.leave(
                "g", [MemberIdentity(victim.consumer.member_id, victim.consumer.instance_id)]
            )
        else:
            statics = [r for r in live if r.consumer.instance_id is not None]
            if statics:
                old = rng.choice(statics)
                old.task.cancel()
                launch(old.consumer.instance_id)
    # Late arrivals, so the churn never leaves the group without anyone to settle.
    launch()
    launch("static-late")
    return fleet


async def settle(
    coordinator: GroupCoordinator, fleet: list[Running]
) -> tuple[Group, list[Consumer]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8
    while True:
        group = coordinator.group("g")
        survivors = [r.consumer for r in fleet if not r.task.done()]
        if group is not None:
            check_invariants(group)
            settled = (
                group.state is GroupState.STABLE
                and not group.pending_sync_members
                and {c.member_id for c in survivors} == set(group.members)
                and all(c.generation_id == group.generation_id for c in survivors)
            )
            if settled:
                return group, survivors
        assert loop.time() < deadline, f"never settled: {group and group.state}, {survivors}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_survivors_of_random_churn_settle_into_one_stable_generation(seed: int):
    async def scenario() -> None:
        rng = random.Random(seed)
        coordinator = await started()
        fleet = await churn(coordinator, rng, steps=15)
        group, survivors = await settle(coordinator, fleet)
        assert survivors, "the churn left nobody running"
        leader = group.members[group.leader_id]  # type: ignore[index]
        assert leader.member_id in {c.member_id for c in survivors}
        assert group.protocol_name in ("range", "roundrobin")
        for consumer in survivors:
            assert consumer.assignment == f"for {consumer.member_id}".encode()
            assert (await consumer.heartbeat()).error_code == ErrorCode.NONE
        for running in fleet:
            running.task.cancel()
        await coordinator.close()

    run(scenario(), timeout=30)
