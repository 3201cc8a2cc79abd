"""The leader's view of its followers: how far each has fetched, which are in sync,
and the high watermark that follows from it.

A follower's fetch offset tells the leader that the follower holds everything below
it. A follower is in sync while it has caught up with the leader's log end within the
last `lag_ms` (Kafka's replica.lag.time.max.ms). The high watermark is the smallest log
end over the in-sync replicas: every record below it is on each of them, which is what
acks=all promises.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FollowerProgress:
    log_end_offset: int = 0
    caught_up_ms: float = 0.0


class InSyncTracker:
    def __init__(self, leader: int, replicas: list[int], in_sync: list[int], now_ms: float,
                 lag_ms: int) -> None:
        self.leader = leader
        self.replicas = list(replicas)
        self.in_sync = set(in_sync) | {leader}
        # Followers being added to the in-sync set through the metadata: they count for
        # the high watermark from the moment the change is proposed, since a failover may
        # pick one as soon as the change is applied, before this tracker hears of it
        # (Kafka's maximal ISR).
        self.joining: set[int] = set()
        self.lag_ms = lag_ms
        # A follower starts with a full grace period: it may not have fetched yet.
        self.followers = {r: FollowerProgress(0, now_ms) for r in replicas if r != leader}

    def set_replicas(self, replicas: list[int], now_ms: float) -> None:
        """The metadata changed the segment's replica set without a new epoch (a removed
        follower replaced by another node): the newcomer is tracked from nothing, so it
        joins the in-sync set once it has caught up; one that left counts no more."""
        if replicas == self.replicas:
            return
        self.replicas = list(replicas)
        for r in replicas:
            if r != self.leader and r not in self.followers:
                self.followers[r] = FollowerProgress(0, now_ms)
        for r in [r for r in self.followers if r not in replicas]:
            del self.followers[r]
            self.in_sync.discard(r)
            self.joining.discard(r)

    def follower_fetched(self, follower: int, offset: int, leader_leo: int, now_ms: float) -> None:
        progress = self.followers.get(follower)
        if progress is None:
            return
        # What the follower holds now, not the most it ever reported: one that came back
        # from a crash with less must not count for records it no longer has (Kafka
        # takes the latest fetch offset too).
        progress.log_end_offset = offset
        if offset >= leader_leo:
            progress.caught_up_ms = now_ms

    def high_watermark(self, leader_leo: int) -> int:
        ends = [leader_leo]
        for follower in self.in_sync | self.joining:
            if follower != self.leader:
                ends.append(self.followers[follower].log_end_offset if follower in self.followers else 0)
        return min(ends)

    def wanted_in_sync(self, leader_leo: int, high_watermark: int, now_ms: float) -> set[int]:
        """The in-sync set as it should be now: laggards out, followers that reached the
        high watermark in (Kafka's rules for shrinking and expanding the ISR)."""
        wanted = {self.leader}
        for follower, progress in self.followers.items():
            if follower in self.in_sync:
                if now_ms - progress.caught_up_ms <= self.lag_ms:
                    wanted.add(follower)
            elif progress.log_end_offset >= high_watermark:
                wanted.add(follower)
        return wanted
