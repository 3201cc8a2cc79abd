"""Why a metadata proposal produced no result, as exceptions a caller can act on."""

from __future__ import annotations

from pysyncobj import FAIL_REASON


class RaftError(Exception):
    """A proposal that did not produce a result."""

    outcome_known = True


class NotLeaderError(RaftError):
    """The command reached a node that is not (or no longer) the leader and was not
    appended. Safe to retry."""

    def __init__(self, leader: str | None, detail: str = "") -> None:
        super().__init__(f"not the metadata leader (leader: {leader or 'unknown'}) {detail}")
        self.leader = leader


class ProposalDiscarded(RaftError):
    """A new leader replaced the entry with another one: it was never applied."""


class ProposalOutcomeUnknown(RaftError):
    """The entry may or may not be applied (timeout, leader change while forwarding).
    Read the state to find out, or propose again if the command is repeatable."""

    outcome_known = False

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        # False for a timeout: the proposal may still be queued and apply later.
        self.retryable = retryable


class RaftUnavailable(RaftError):
    """The proposal queue is full or the group is closed."""


class RaftBindError(RaftError):
    """This member could not listen on its Raft address."""


def error_for(reason: int, leader: str | None) -> RaftError:
    if reason == FAIL_REASON.NOT_LEADER:
        return NotLeaderError(leader, "(the command was forwarded to a stale leader)")
    if reason == FAIL_REASON.MISSING_LEADER:
        return NotLeaderError(None, "(election in progress)")
    if reason == FAIL_REASON.DISCARDED:
        return ProposalDiscarded("the entry was overwritten by a new leader")
    if reason in (FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME):
        return ProposalOutcomeUnknown(f"leader changed before the outcome was known ({reason})")
    if reason == FAIL_REASON.QUEUE_FULL:
        return RaftUnavailable("metadata proposal queue is full")
    return RaftError(f"proposal failed: pysyncobj reason {reason}")
