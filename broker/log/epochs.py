"""OffsetForLeaderEpoch over the Walrus segments of one log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.log.manifest import SegmentInfo

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@dataclass(slots=True)
class EpochEndOffset:
    epoch: int
    end_offset: int


def end_offset_for_epoch(
    segments: Sequence[SegmentInfo], epoch: int, log_end_offset: int
) -> EpochEndOffset:
    """Kafka's rules: for the latest epoch, the log end; otherwise the start offset of
    the first later epoch, paired with the largest known epoch at or below the one asked
    (the asked one itself when it is below them all); UNDEFINED for an epoch above every
    known one. Sealed segments that hold no offsets are not known epochs, as in Kafka's
    epoch cache, which only records epochs that wrote."""
    if not segments or epoch == UNDEFINED_EPOCH:
        return EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    latest = segments[-1].epoch
    if epoch == latest:
        return EpochEndOffset(epoch, log_end_offset)
    known = [s for s in segments if s.end_offset is None or s.end_offset > s.base_offset]
    higher = next((s for s in known if s.epoch > epoch), None)
    if higher is None:
        if epoch > latest:
            return EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        return EpochEndOffset(epoch, log_end_offset)
    floor = [s for s in known if s.epoch <= epoch]
    if not floor:
        return EpochEndOffset(epoch, higher.base_offset)
    return EpochEndOffset(floor[-1].epoch, higher.base_offset)
