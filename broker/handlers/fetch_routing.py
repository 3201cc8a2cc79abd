"""Where a fetch of one partition at one offset is served: a pure decision from the
applied metadata, this node's copies and the time (handlers/fetch.py carries it out).

- The active segment is read from its leader, which checks the client's leader epoch
  (KIP-320). An in-sync follower serves a rack-aware consumer what it holds (KIP-392),
  and a leader names such a follower to a consumer in another rack.
- A sealed segment is read here when this node holds all of it; otherwise from its
  writer, then its other in-sync replicas, those alive. A node with only the head of it
  (it missed records before a failover sealed it further on) is no candidate for the
  offsets past its copy, and is asked for the others only in its turn. The candidates
  after the first are spares, tried in turn when a holder turns out to lack the offset.
- An offset below the first segment is out of range, whoever asks.
- Another node asking (`local_only`) is answered from this node's data, or told
  NOT_LEADER_OR_FOLLOWER (retriable) when this node lacks the offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from broker.coordination.state import ClusterState
from broker.handlers.access import check_leader_epoch
from broker.leadership.readiness import active_view
from broker.leadership.roles import ActiveSegment
from broker.protocol.errors import ErrorCode


class LocalCopy(Protocol):
    """What this node holds of the partition (partitions/replica.py)."""

    def holds_sealed(self, epoch: int, base_offset: int, end_offset: int) -> bool: ...

    def holds_offset(self, epoch: int, offset: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class FetchRoute:
    error: ErrorCode
    # The partition's active segment (None when the partition is unknown).
    active: ActiveSegment | None = None
    # The node to read from; this node's own id means a local read.
    holder: int = -1
    # Other complete copies of a sealed segment, tried in turn if the holder lacks it.
    spare_holders: tuple[int, ...] = ()
    # The high watermark as far as the metadata tells: the active segment's base, below
    # which everything is sealed and so committed (or the first segment's base, for an
    # offset out of range below it).
    high_watermark: int = -1
    # KIP-392: the in-sync follower in the consumer's rack it should read from instead.
    preferred_replica: int = -1

    @property
    def leader(self) -> int:
        return -1 if self.active is None else self.active.leader


def route_fetch(me: int, state: ClusterState, now_ms: int, topic: str, partition: int, offset: int,
                *, current_leader_epoch: int = -1, local_only: bool = False, client_rack: str = "",
                copy: LocalCopy | None = None) -> FetchRoute:
    part = state.partition(topic, partition)
    if part is None:
        return FetchRoute(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    active = active_view(part.active)
    high_watermark = active.base_offset
    segment = part.segment_for_offset(offset)
    if not local_only and active.leader == me:
        err = check_leader_epoch(current_leader_epoch, active.epoch)
        if err != ErrorCode.NONE:
            return FetchRoute(err, active, high_watermark=high_watermark)
    if segment is None:
        # Below the first segment, or negative: every offset past it is in a segment
        # (the active one has no end).
        return FetchRoute(ErrorCode.OFFSET_OUT_OF_RANGE, active,
                          high_watermark=max(high_watermark, part.segments[0].base_offset))

    candidates = [segment.leader] if not segment.sealed else [
        segment.leader, *(r for r in segment.in_sync if r != segment.leader)]
    holders = [n for n in candidates if n == me or state.broker_alive(n, now_ms)]
    preferred = -1
    if client_rack and not segment.sealed:
        if active.leader == me and _rack(state, me) != client_rack:
            preferred = next((r for r in active.in_sync if r != me and state.broker_alive(r, now_ms)
                              and _rack(state, r) == client_rack), -1)
        if active.leader != me and me in active.in_sync:
            # It serves up to its own high watermark, which trails the leader's a little;
            # other fetches go to the leader, which has the latest.
            holders = [me]

    holder = -1
    if segment.sealed and me in holders:
        assert segment.end_offset is not None
        if copy is not None and copy.holds_sealed(segment.epoch, segment.base_offset, segment.end_offset):
            holder, holders = me, []
        elif copy is None or not copy.holds_offset(segment.epoch, offset):
            holders = [n for n in holders if n != me]
            if local_only or not holders:
                # Asked by another node, which tries the segment's next holder on this
                # answer; or no complete copy is alive: retriable either way.
                return FetchRoute(ErrorCode.NOT_LEADER_OR_FOLLOWER, active, high_watermark=high_watermark)
    spares: tuple[int, ...] = ()
    if holders:
        holder = holders[0]
        if segment.sealed:
            spares = tuple(n for n in holders[1:] if n != me)
    elif holder < 0:
        holder = segment.leader
    if local_only:
        holder = me
    return FetchRoute(ErrorCode.NONE, active, holder, spares, high_watermark, preferred)


def _rack(state: ClusterState, node_id: int) -> str | None:
    broker = state.brokers.get(node_id)
    return None if broker is None else broker.rack
