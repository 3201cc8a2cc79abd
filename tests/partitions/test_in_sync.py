"""The leader's in-sync bookkeeping: high watermark and the ISR's shrink and growth."""

import pytest

from broker.partitions.in_sync import InSyncTracker

pytestmark = pytest.mark.unit


def test_high_watermark_is_the_smallest_log_end_over_the_in_sync_replicas() -> None:
    t = InSyncTracker(1, [1, 2, 3], [1, 2, 3], now_ms=0, lag_ms=1000)
    assert t.high_watermark(100) == 0
    t.follower_fetched(2, 80, 100, now_ms=10)
    t.follower_fetched(3, 100, 100, now_ms=10)
    assert t.high_watermark(100) == 80
    t.follower_fetched(2, 100, 100, now_ms=20)
    assert t.high_watermark(100) == 100


def test_a_lagging_follower_leaves_and_rejoins_when_it_reaches_the_high_watermark() -> None:
    t = InSyncTracker(1, [1, 2, 3], [1, 2, 3], now_ms=0, lag_ms=1000)
    t.follower_fetched(2, 50, 50, now_ms=500)
    t.follower_fetched(3, 10, 50, now_ms=500)
    # Node 3 has not caught up since it started (t=0): out after lag_ms.
    assert t.wanted_in_sync(50, 10, now_ms=1200) == {1, 2}
    t.in_sync = {1, 2}
    assert t.high_watermark(50) == 50
    t.follower_fetched(3, 50, 60, now_ms=1300)
    assert t.wanted_in_sync(60, 50, now_ms=1300) == {1, 2, 3}


def test_the_leader_alone_is_always_in_sync() -> None:
    t = InSyncTracker(1, [1, 2], [2], now_ms=0, lag_ms=10)
    assert 1 in t.in_sync
    assert t.wanted_in_sync(0, 0, now_ms=10_000) >= {1}


def test_a_new_follower_has_a_full_grace_period_from_the_tracker_start_and_holds_nothing() -> None:
    t = InSyncTracker(1, [1, 2], [1, 2], now_ms=5000, lag_ms=1000)
    assert t.high_watermark(100) == 0
    # Not fetched yet, but within lag_ms of the tracker's start: still in sync.
    assert t.wanted_in_sync(100, 0, now_ms=5900) == {1, 2}
    assert t.wanted_in_sync(100, 0, now_ms=6001) == {1}


def test_a_follower_caught_up_exactly_lag_ms_ago_is_still_in_sync() -> None:
    t = InSyncTracker(1, [1, 2], [1, 2], now_ms=0, lag_ms=1000)
    t.follower_fetched(2, 50, 50, now_ms=300)
    assert t.wanted_in_sync(60, 50, now_ms=1300) == {1, 2}
    assert t.wanted_in_sync(60, 50, now_ms=1301) == {1}


def test_an_in_sync_node_the_leader_does_not_track_holds_the_high_watermark_at_zero() -> None:
    # The metadata lists node 4 in sync, but it is no replica here: nothing it holds is
    # known, so it counts as holding nothing rather than breaking the computation.
    t = InSyncTracker(1, [1, 2], [1, 2, 4], now_ms=0, lag_ms=1000)
    t.follower_fetched(2, 100, 100, now_ms=10)
    assert t.high_watermark(100) == 0
    t.in_sync.discard(4)
    t.joining = {4}
    assert t.high_watermark(100) == 0
    t.joining = set()
    assert t.high_watermark(100) == 100
