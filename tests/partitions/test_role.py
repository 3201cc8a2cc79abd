"""The replica's role machine (partitions/role.py): what may follow what."""

from __future__ import annotations

import pytest

from broker.partitions.role import TRANSITIONS, Event, PartitionRole, Role

pytestmark = pytest.mark.unit


def test_one_thing_at_a_time_each_started_from_steady() -> None:
    for event in (Event.START_ROLL, Event.START_LEARNING, Event.START_SEALING):
        for busy in (Event.START_ROLL, Event.START_LEARNING, Event.START_SEALING):
            role = PartitionRole()
            assert role.handle(busy, 5)
            before = (role.role, role.epoch)
            assert not role.handle(event, 6), f"{event.value} while {role.role.value}"
            assert (role.role, role.epoch) == before


def test_an_ending_event_ends_only_what_is_under_way_for_its_epoch() -> None:
    settled: list[str] = []
    role = PartitionRole(on_settled=lambda: settled.append("settled"))
    assert not role.handle(Event.ROLL_ENDED), "nothing under way: a no-op"
    assert role.handle(Event.START_ROLL, 4) and role.epoch_if(Role.ROLLING) == 4
    assert not role.handle(Event.SEAL_ENDED, 4), "a seal is not what is under way"
    assert not role.handle(Event.ROLL_ENDED, 3), "another epoch's roll"
    assert settled == []
    assert role.handle(Event.ROLL_ENDED, 4)
    assert (role.role, role.epoch, settled) == (Role.STEADY, None, ["settled"])
    # An outcome applied without an epoch (a roll committed) ends whichever roll it is.
    assert role.handle(Event.START_ROLL, 9) and role.handle(Event.ROLL_ENDED)


def test_appends_wait_for_rolls_and_learning_not_for_seals() -> None:
    held = {}
    for start in (Event.START_ROLL, Event.START_LEARNING, Event.START_SEALING):
        role = PartitionRole()
        role.handle(start, 1)
        held[role.role] = role.holds_appends
    assert held == {Role.ROLLING: True, Role.LEARNING: True, Role.SEALING: False}


def test_every_state_is_reachable_and_returns_to_steady() -> None:
    reached = {after for (_, _), after in TRANSITIONS.items()}
    assert reached == set(Role)
    for role in Role:
        if role is not Role.STEADY:
            assert any(before is role and after is Role.STEADY for (before, _), after in TRANSITIONS.items())
