"""The pure decision of what a node must do before it leads a partition's active
segment (leadership/roles.py), case by case."""

from __future__ import annotations

import pytest

from broker.leadership.roles import (
    ActiveSegment,
    BeginSegment,
    ChangeFollowers,
    LeadAlone,
    LocalLeadership,
    TrackFollowers,
    leader_steps,
)

pytestmark = pytest.mark.unit

ME = 1


def _active(epoch: int = 4, replicas: tuple[int, ...] = (1, 2, 3), leader: int = ME) -> ActiveSegment:
    return ActiveSegment(epoch, 100, leader, replicas, replicas[:2])


@pytest.mark.parametrize(("case", "active", "local", "steps"), [
    ("another node leads: nothing for this one to do",
     _active(leader=2), LocalLeadership(0, None), ()),
    ("ready: its log is at the epoch and it tracks the same followers",
     _active(), LocalLeadership(4, 4, (1, 2, 3)), ()),
    ("leadership came in a newer epoch: begin it, then track the followers afresh",
     _active(), LocalLeadership(3, 3, (1, 2, 3)),
     (BeginSegment(4, 100), TrackFollowers(4, (1, 2, 3), (1, 2)))),
    ("the segment was begun (a roll applied here) but no follower is tracked yet",
     _active(), LocalLeadership(4, None), (TrackFollowers(4, (1, 2, 3), (1, 2)),)),
    ("tracking the followers of an older epoch: they confirmed nothing of this one",
     _active(), LocalLeadership(4, 3, (1, 2, 3)), (TrackFollowers(4, (1, 2, 3), (1, 2)),)),
    ("a follower was replaced without a new epoch",
     _active(replicas=(1, 2, 4)), LocalLeadership(4, 4, (1, 2, 3)), (ChangeFollowers((1, 2, 4)),)),
    ("no followers and none tracked",
     _active(replicas=(1,)), LocalLeadership(4, None), ()),
    ("the followers are gone: lead alone, every write committed",
     _active(replicas=(1,)), LocalLeadership(4, 4, (1, 2)), (LeadAlone(),)),
    ("a log at an older epoch and no followers: only begin",
     _active(replicas=(1,)), LocalLeadership(2, None), (BeginSegment(4, 100),)),
])
def test_the_steps_due_before_leading(case: str, active: ActiveSegment, local: LocalLeadership,
                                      steps: tuple[object, ...]) -> None:
    assert leader_steps(ME, active, local) == steps, case


def test_once_the_steps_are_taken_none_is_due() -> None:
    # The decision settles: what the steps leave behind asks for nothing more.
    active = _active()
    assert leader_steps(ME, active, LocalLeadership(active.epoch, active.epoch, active.replicas)) == ()
