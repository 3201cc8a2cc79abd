"""What a replica is in the middle of, as one explicit state machine (sans-IO).

A replica is STEADY (leading or following, as the metadata says) unless one of these
is under way, and never two at once:

- ROLLING: this node leads the segment of `epoch` and has proposed to seal it and hand
  the next one on (leadership/rotation.py); appends wait, so nothing lands past the
  end offset the roll seals.
- LEARNING: leadership just came here from a node this one did not follow, and the
  producers' last sequences are being learnt from it; appends wait.
- SEALING: this follower is sealing the segment of `epoch`, whose leader is dead
  (replication/failover.py); it takes nothing more of it from the old leader.

Every change is an event looked up in TRANSITIONS; an event the table does not allow
in the current state changes nothing and says so (False), so a caller can tell "a roll
is already under way" from "the roll started". An event that ends what is not under
way (a roll's outcome applied on a replica that was not rolling it) is a no-op.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Role(enum.Enum):
    STEADY = "steady"
    ROLLING = "rolling"
    LEARNING = "learning"
    SEALING = "sealing"


class Event(enum.Enum):
    START_ROLL = "start roll"
    ROLL_ENDED = "roll ended"  # applied, refused or put off
    START_LEARNING = "start learning"
    LEARNED = "learned"  # or given up: the previous leader is gone
    START_SEALING = "start sealing"
    SEAL_ENDED = "seal ended"  # applied, refused, or the leader came back


TRANSITIONS: dict[tuple[Role, Event], Role] = {
    (Role.STEADY, Event.START_ROLL): Role.ROLLING,
    (Role.ROLLING, Event.ROLL_ENDED): Role.STEADY,
    (Role.STEADY, Event.START_LEARNING): Role.LEARNING,
    (Role.LEARNING, Event.LEARNED): Role.STEADY,
    (Role.STEADY, Event.START_SEALING): Role.SEALING,
    (Role.SEALING, Event.SEAL_ENDED): Role.STEADY,
}

# The events that end what is under way (back to STEADY).
_ENDING = frozenset(event for (_, event), after in TRANSITIONS.items() if after is Role.STEADY)


class PartitionRole:
    def __init__(self, on_settled: Callable[[], None] | None = None) -> None:
        self.role = Role.STEADY
        # The segment a roll or a seal is about; None otherwise.
        self.epoch: int | None = None
        # Called whenever the replica is back to STEADY (appends may go on).
        self._on_settled = on_settled

    def handle(self, event: Event, epoch: int | None = None) -> bool:
        """Apply `event` (about the segment of `epoch`, for rolls and seals); True when
        the state changed. An ending event for another epoch than the one under way
        changes nothing."""
        if event in _ENDING and epoch is not None and epoch != self.epoch:
            return False
        after = TRANSITIONS.get((self.role, event))
        if after is None:
            return False
        self.role = after
        self.epoch = epoch if after in (Role.ROLLING, Role.SEALING) else None
        if after is Role.STEADY and self._on_settled is not None:
            self._on_settled()
        return True

    @property
    def holds_appends(self) -> bool:
        return self.role in (Role.ROLLING, Role.LEARNING)

    def epoch_if(self, role: Role) -> int | None:
        """The epoch of the roll or seal under way, if that is what is under way."""
        return self.epoch if self.role is role else None
