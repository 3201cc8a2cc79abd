"""Where a produce of one partition goes (handlers/produce_routing.py), case by case."""

from __future__ import annotations

import pytest

from broker.handlers.produce_routing import (
    Placement,
    ProduceRoute,
    route_produce,
    worth_placing_again,
)
from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

ME, OTHER = 1, 2
NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER


@pytest.mark.parametrize(("case", "leader", "error", "may_forward", "idempotent", "route"), [
    ("led here", ME, ErrorCode.NONE, True, True, ProduceRoute(Placement.HERE, ME)),
    ("a plain batch for another leader is forwarded", OTHER, NOT_LEADER, True, False,
     ProduceRoute(Placement.FORWARD, OTHER)),
    ("an idempotent batch is the client's to send to the leader", OTHER, NOT_LEADER, True, True,
     ProduceRoute(Placement.ANSWER, OTHER, NOT_LEADER)),
    ("a forwarded request is not forwarded again", OTHER, NOT_LEADER, False, False,
     ProduceRoute(Placement.ANSWER, OTHER, NOT_LEADER)),
    ("unknown partition", -1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True, False,
     ProduceRoute(Placement.ANSWER, -1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)),
    ("led here but its files are unreadable", ME, ErrorCode.KAFKA_STORAGE_ERROR, True, False,
     ProduceRoute(Placement.ANSWER, ME, ErrorCode.KAFKA_STORAGE_ERROR)),
])
def test_where_a_batch_goes(case: str, leader: int, error: ErrorCode, may_forward: bool, idempotent: bool,
                            route: ProduceRoute) -> None:
    assert route_produce(ME, leader, error, may_forward=may_forward, idempotent=idempotent) == route, case


def test_which_not_leader_answers_are_placed_again() -> None:
    # Leadership moved here meanwhile, or to a node this one forwards to: place again.
    assert worth_placing_again(ME, ME, may_forward=True, idempotent=True)
    assert worth_placing_again(ME, OTHER, may_forward=True, idempotent=False)
    # A forwarded request: the leader it reached may just not have applied its promotion.
    assert worth_placing_again(ME, OTHER, may_forward=False, idempotent=True)
    # An idempotent batch now led elsewhere: the client sends it there.
    assert not worth_placing_again(ME, OTHER, may_forward=True, idempotent=True)
    assert not worth_placing_again(ME, -1, may_forward=True, idempotent=False)
