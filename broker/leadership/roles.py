"""What this node must do before it leads a partition's active segment: a pure decision.

The metadata names the leader of each partition's active segment; the node it names
has to bring its local replica in line before it writes or serves the newest records:

- begin the segment in its local log (which cuts a tail past the previous seal that was
  never committed) when the log is still at an older epoch;
- track its followers' progress, which is what moves the high watermark, from the
  segment's replicas and in-sync set; or lead alone when the segment has no followers;
- follow a change of the segment's replicas.

`leader_steps` says which of these are due, from what the metadata says (ActiveSegment)
and what the replica has done (LocalLeadership); it does nothing itself.
`leadership/readiness.py` carries the steps out, on the metadata's applies and on a
write; a read only asks whether any are due, and never takes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ActiveSegment:
    """The metadata's active segment of a partition."""

    epoch: int
    base_offset: int
    leader: int
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LocalLeadership:
    """Where this node's replica of the partition stands."""

    log_epoch: int  # the epoch of the newest segment in the local log
    tracker_epoch: int | None  # the epoch whose followers it tracks; None: it tracks none
    tracker_replicas: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class BeginSegment:
    epoch: int
    base_offset: int


@dataclass(frozen=True, slots=True)
class TrackFollowers:
    """Track these followers from scratch: none has confirmed anything to this node in
    this epoch yet."""

    epoch: int
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChangeFollowers:
    replicas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LeadAlone:
    """The segment has no followers: every record written is committed."""


Step = BeginSegment | TrackFollowers | ChangeFollowers | LeadAlone


def leader_steps(me: int, active: ActiveSegment, local: LocalLeadership) -> tuple[Step, ...]:
    """What is left to do before node `me` leads `active`, in order; () when it is ready
    (or when another node leads it: nothing here is then to be done by `me`)."""
    if active.leader != me:
        return ()
    steps: list[Step] = []
    if local.log_epoch < active.epoch:
        steps.append(BeginSegment(active.epoch, active.base_offset))
    if len(active.replicas) < 2:
        if local.tracker_epoch is not None:
            steps.append(LeadAlone())
    elif local.tracker_epoch != active.epoch:
        steps.append(TrackFollowers(active.epoch, active.replicas, active.in_sync))
    elif local.tracker_replicas != active.replicas:
        steps.append(ChangeFollowers(active.replicas))
    return tuple(steps)
