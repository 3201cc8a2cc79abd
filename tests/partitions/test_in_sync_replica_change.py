"""A replica set that changes within an epoch (a removed follower replaced): the
leader's tracker follows it."""

import pytest

from broker.partitions.in_sync import InSyncTracker

pytestmark = pytest.mark.unit


def test_a_replacement_follower_joins_once_caught_up_and_the_removed_one_counts_no_more() -> None:
    t = InSyncTracker(1, [1, 2, 3], [1, 3], now_ms=0, lag_ms=1000)
    t.follower_fetched(3, 100, 100, now_ms=10)
    t.set_replicas([1, 3, 4], now_ms=20)
    assert 2 not in t.followers and 2 not in t.in_sync
    # Unknown before the change, the newcomer is heard now; it joins at the high watermark.
    t.follower_fetched(4, 40, 100, now_ms=30)
    assert t.wanted_in_sync(100, 100, now_ms=30) == {1, 3}
    t.follower_fetched(4, 100, 100, now_ms=40)
    assert t.wanted_in_sync(100, 100, now_ms=40) == {1, 3, 4}


def test_a_removed_in_sync_follower_no_longer_holds_back_the_high_watermark() -> None:
    t = InSyncTracker(1, [1, 2, 3], [1, 2, 3], now_ms=0, lag_ms=1000)
    t.follower_fetched(2, 10, 100, now_ms=10)
    t.follower_fetched(3, 100, 100, now_ms=10)
    assert t.high_watermark(100) == 10
    t.set_replicas([1, 3, 4], now_ms=20)
    assert t.high_watermark(100) == 100
    t.set_replicas([1, 3, 4], now_ms=30)  # unchanged: nothing moves
    assert t.followers[4].caught_up_ms == 20


def test_a_replacement_follower_holds_nothing_until_it_fetches() -> None:
    t = InSyncTracker(1, [1, 2], [1, 2], now_ms=0, lag_ms=1000)
    t.follower_fetched(2, 1, 1, now_ms=10)
    t.set_replicas([1, 2, 3], now_ms=20)
    assert t.replicas == [1, 2, 3]
    assert t.followers[3].log_end_offset == 0
    # The high watermark is 1: the newcomer, which has fetched nothing, is not at it.
    assert t.wanted_in_sync(1, 1, now_ms=30) == {1, 2}
    t.joining = {3}
    assert t.high_watermark(1) == 0


def test_a_removed_follower_that_was_joining_counts_no_more() -> None:
    t = InSyncTracker(1, [1, 2, 3], [1, 2], now_ms=0, lag_ms=1000)
    t.follower_fetched(2, 100, 100, now_ms=10)
    t.follower_fetched(3, 60, 100, now_ms=10)
    t.joining = {3}
    assert t.high_watermark(100) == 60
    t.set_replicas([1, 2, 4], now_ms=20)
    assert t.joining == set()
    assert t.high_watermark(100) == 100
