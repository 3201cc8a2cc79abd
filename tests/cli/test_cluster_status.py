"""What `walrus-broker cluster status` prints about re-replication."""

from __future__ import annotations

import pytest

from broker.cli import _print_status
from broker.coordination.membership import BrokerEntry, ClusterStatus

pytestmark = pytest.mark.unit


def _status() -> ClusterStatus:
    return ClusterStatus(
        via="127.0.0.1:9192", leader="127.0.0.1:9192", members=["127.0.0.1:9192"],
        brokers=[BrokerEntry(1, "127.0.0.1", 9092, "127.0.0.1:9192", True)],
        under_replicated=[
            {"topic": "orders", "partition": 3, "epoch": 12, "base_offset": 4200,
             "end_offset": 4800, "holders": [1, 2], "copying": [5], "wanted": 3,
             "replicas": [1, 2]},
            {"topic": "orders", "partition": 4, "epoch": 2, "base_offset": 0,
             "end_offset": 10, "holders": [], "copying": [], "wanted": 1, "replicas": []},
        ],
        copies=[{"topic": "orders", "partition": 3, "epoch": 12, "base_offset": 4200,
                 "end_offset": 4800, "copied_to": 4510, "bytes": 1048576, "source": 1,
                 "node_id": 5}],
    )


def test_status_counts_under_replicated_segments_copies_and_lost_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print_status(_status())
    out = capsys.readouterr().out
    assert ("under-replicated sealed segments: 2; copies in progress: 1 "
            "(1048576 bytes copied so far); with no registered holder: 1") in out
    assert ("orders-3 epoch 12 [4200, 4800): held by [1, 2] of 3 wanted; copying to 5 at "
            "offset 4510, 1048576 bytes from node 1") in out
    assert "orders-4 epoch 2 [0, 10): held by [] of 1 wanted" in out


def test_status_round_trips_through_json_and_reads_older_answers() -> None:
    status = _status()
    assert ClusterStatus.from_dict(status.to_dict()) == status
    older = {k: v for k, v in status.to_dict().items() if k not in ("under_replicated", "copies")}
    assert ClusterStatus.from_dict(older).under_replicated == []


def test_nothing_to_copy_says_zero(capsys: pytest.CaptureFixture[str]) -> None:
    status = _status()
    status.under_replicated, status.copies = [], []
    _print_status(status)
    assert "under-replicated sealed segments: 0; copies in progress: 0" in capsys.readouterr().out
