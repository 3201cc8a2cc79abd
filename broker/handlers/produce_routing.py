"""Where a produce of one partition goes: a pure decision from who leads it, whether
this node may forward and what the batch is (handlers/produce.py carries it out).

- This node leads it: written here (or, its files unreadable, KAFKA_STORAGE_ERROR).
- Another node leads it: a client's plain batch is forwarded there; an idempotent
  producer's batch is refused with NOT_LEADER_OR_FOLLOWER, as Kafka refuses it, so the
  producer sends it to the leader itself and its batches reach the leader in order on
  one connection (a forwarded batch is a second path, which a later batch sent
  straight to the new leader can overtake). A request another node forwarded is never
  forwarded again.
- Nobody: the error the lookup gave (unknown topic or partition).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from broker.protocol.errors import ErrorCode


class Placement(enum.Enum):
    HERE = "here"
    FORWARD = "forward"
    ANSWER = "answer"  # with `error`, unwritten


@dataclass(frozen=True, slots=True)
class ProduceRoute:
    placement: Placement
    leader: int = -1
    error: ErrorCode = ErrorCode.NONE


def route_produce(me: int, leader: int, lookup_error: ErrorCode, *, may_forward: bool,
                  idempotent: bool) -> ProduceRoute:
    """`leader` and `lookup_error` as the partition lookup found them (-1 and its error
    when the partition is unknown or its files unreadable here)."""
    if lookup_error == ErrorCode.NONE and leader == me:
        return ProduceRoute(Placement.HERE, leader)
    if lookup_error == ErrorCode.NOT_LEADER_OR_FOLLOWER and leader not in (-1, me) \
            and may_forward and not idempotent:
        return ProduceRoute(Placement.FORWARD, leader)
    return ProduceRoute(Placement.ANSWER, leader, lookup_error)


def worth_placing_again(me: int, leader: int, *, may_forward: bool, idempotent: bool) -> bool:
    """Whether a batch answered "not leader" is placed again shortly rather than
    answered: the metadata names a leader that is this node, or one it forwards to. An
    idempotent batch for another node is the client's to send there."""
    if leader < 0:
        return False
    return leader == me or not may_forward or not idempotent
