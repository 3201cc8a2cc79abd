"""The states of a classic consumer group and the moves allowed between them."""

from __future__ import annotations

from enum import Enum


class GroupState(Enum):
    # No members; committed offsets may remain.
    EMPTY = "Empty"
    # Waiting for members to (re)join before a new generation starts.
    PREPARING_REBALANCE = "PreparingRebalance"
    # A generation is formed; waiting for the leader's assignment.
    COMPLETING_REBALANCE = "CompletingRebalance"
    # Every member has its assignment.
    STABLE = "Stable"
    # Deleted, or no longer served by this coordinator.
    DEAD = "Dead"

    @classmethod
    def parse(cls, name: str) -> GroupState | None:
        """The state named ``name`` (as ListGroups' states filter spells it), any case."""
        folded = name.casefold()
        for state in cls:
            if state.value.casefold() == folded:
                return state
        return None


_S = GroupState

# For each state, the states a group may enter it from.
VALID_PREVIOUS_STATES: dict[GroupState, frozenset[GroupState]] = {
    _S.EMPTY: frozenset({_S.PREPARING_REBALANCE}),
    _S.PREPARING_REBALANCE: frozenset({_S.EMPTY, _S.STABLE, _S.COMPLETING_REBALANCE}),
    _S.COMPLETING_REBALANCE: frozenset({_S.PREPARING_REBALANCE}),
    _S.STABLE: frozenset({_S.COMPLETING_REBALANCE}),
    _S.DEAD: frozenset(_S),
}

# States from which a membership change starts a new rebalance.
REBALANCEABLE_STATES = frozenset({_S.EMPTY, _S.STABLE, _S.COMPLETING_REBALANCE})


class IllegalStateTransition(RuntimeError):
    pass
