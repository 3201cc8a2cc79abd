"""Re-replication of sealed segments, as the metadata sees it.

A sealed segment is held by the replicas of its in-sync set that are still registered.
When that is fewer than the topic's replication factor (capped at the registered
brokers), live nodes that do not hold it are chosen as copy targets and listed in the
segment's ``copying``. A target becomes a replica, and so is read from, only once it
reports a verified copy (SegmentCopied). Pure functions of the state, so every member
plans the same copies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .model import Segment, Topic


@dataclass(slots=True)
class SealedGap:
    """One sealed segment below its replication factor."""

    topic: str
    partition: int
    epoch: int
    base_offset: int
    end_offset: int
    holders: list[int]
    copying: list[int]
    wanted: int
    replicas: list[int]


def holders(segment: Segment, registered: Mapping[int, object]) -> list[int]:
    """The registered nodes that hold all of a sealed segment."""
    return [n for n in segment.in_sync if n in registered]


def wanted_copies(topic: Topic, registered: Mapping[int, object]) -> int:
    return max(1, min(topic.replication_factor, len(registered)))


def sealed_segments(topics: Mapping[str, Topic]) -> Iterator[tuple[Topic, int, Segment]]:
    for name in sorted(topics):
        topic = topics[name]
        for p in topic.partitions:
            for seg in p.segments:
                if seg.sealed:
                    yield topic, p.index, seg


def under_replicated(topics: Mapping[str, Topic], registered: Mapping[int, object]) -> list[SealedGap]:
    """Every sealed segment held by fewer nodes than its topic wants."""
    out = []
    for topic, index, seg in sealed_segments(topics):
        held = holders(seg, registered)
        wanted = wanted_copies(topic, registered)
        if len(held) < wanted:
            assert seg.end_offset is not None
            out.append(SealedGap(topic.name, index, seg.epoch, seg.base_offset, seg.end_offset,
                                 held, list(seg.copying), wanted, list(seg.replicas)))
    return out


def forget_node(topics: Mapping[str, Topic], gone: int) -> None:
    """A removed node no longer holds or copies any sealed segment."""
    for _, _, seg in sealed_segments(topics):
        if gone in seg.replicas:
            seg.replicas = [r for r in seg.replicas if r != gone]
        if seg.isr is not None and gone in seg.isr:
            seg.isr = [r for r in seg.isr if r != gone]
        if gone in seg.copying:
            seg.copying = [r for r in seg.copying if r != gone]


def plan_copies(
    topics: Mapping[str, Topic],
    registered: Mapping[int, object],
    live: Sequence[int],
    racks: Mapping[int, str | None],
) -> int:
    """Give every under-replicated sealed segment enough copy targets; returns how many
    copies were assigned or moved.

    A target that is not live is dropped when another live node can take its place (a
    target that dies mid-copy is replaced). Targets are live nodes that hold no part of
    the segment, preferring a rack the holders do not use, then the least loaded node
    (segments held or being copied), then the lowest id. A segment no registered node
    holds cannot be copied: its targets are dropped and it stays listed as lost.
    """
    live_set = set(live)
    load: dict[int, int] = dict.fromkeys(live, 0)
    for _, _, seg in sealed_segments(topics):
        for n in {*seg.in_sync, *seg.copying}:
            if n in load:
                load[n] += 1
    changes = 0
    for topic, _, seg in sealed_segments(topics):
        held = holders(seg, registered)
        wanted = wanted_copies(topic, registered)
        if not held:
            if seg.copying:
                seg.copying = []
                changes += 1
            continue
        if len(held) >= wanted:
            if seg.copying:
                seg.copying = []
                changes += 1
            continue
        missing = wanted - len(held)
        spare = [n for n in sorted(live_set) if n not in seg.replicas and n not in seg.copying]
        copying = list(seg.copying)
        for target in list(copying):
            if target not in live_set and spare:
                copying.remove(target)
        while len(copying) > missing:
            copying.pop()
        used_racks = {racks.get(n) for n in held + copying}
        while len(copying) < missing and spare:
            pick = min(spare, key=lambda n: (
                racks.get(n) is None or racks.get(n) in used_racks, load.get(n, 0), n))
            spare.remove(pick)
            copying.append(pick)
            used_racks.add(racks.get(pick))
            load[pick] = load.get(pick, 0) + 1
        if copying != seg.copying:
            changes += sum(1 for n in copying if n not in seg.copying) or 1
            seg.copying = copying
    return changes


def needs_planning(topics: Mapping[str, Topic], registered: Mapping[int, object],
                   live: Sequence[int]) -> bool:
    """Whether a PlanCopies would change anything: a sealed segment below its factor
    with fewer live targets than it needs, or an active segment with a follower long
    silent (not in `registered`), while a spare live node exists."""
    live_set = set(live)
    for topic in topics.values():
        for p in topic.partitions:
            active = p.active
            # A follower long silent (not counted) whose place another live node can take.
            if (any(r != active.leader and r not in registered for r in active.replicas)
                    and any(n not in active.replicas for n in live_set)):
                return True
    for gap in under_replicated(topics, registered):
        if not gap.holders:
            continue
        active_targets = [n for n in gap.copying if n in live_set]
        if len(gap.holders) + len(active_targets) >= gap.wanted:
            continue
        taken = set(gap.replicas) | set(gap.copying)
        if any(n not in taken for n in live_set):
            return True
    return False
