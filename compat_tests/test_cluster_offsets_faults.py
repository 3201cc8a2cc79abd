"""ListOffsets when a node holding some of a partition's segments is down or removed:
answers that could lie in its segments are refused with a retriable error while it is
down (never a wrong offset), answers before them still come, and once the node is
removed from the cluster its segments are skipped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.protocol.errors import ErrorCode
from compat_tests.cluster import Cluster
from compat_tests.harness import REPO_ROOT
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_offsets import (
    EARLIEST,
    LATEST,
    MAX_TIMESTAMP,
    SEGMENT_ENTRIES,
    Written,
    _first_at_or_after,
    _leader,
    _list,
    _now_ms,
    _write,
)

pytestmark = [pytest.mark.compat, pytest.mark.fault, pytest.mark.slow]

# Three segments: with three nodes each led by another node, so every node but the
# leader holds one segment.
RECORDS = 3 * SEGMENT_ENTRIES


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, 3) as c:
        deadline = time.monotonic() + 30
        while True:
            with RawClient(c.nodes[1].bootstrap) as raw:
                if len(raw.request("Metadata", 12, {"topics": []}).brokers) == 3:
                    break
            assert time.monotonic() < deadline, "the three nodes did not all register"
            time.sleep(0.2)
        yield c


def _answers(bootstrap: str, written: Written, targets: list[int]) -> list[tuple[int, int]]:
    return [(f.error_code, f.offset) for f in (_list(bootstrap, "spread", t) for t in targets)]


def test_a_down_holder_makes_answers_that_may_lie_in_its_segments_retriable(
    cluster: Cluster,
) -> None:
    base = _now_ms() - 10 * 60 * 1000
    written = _write(cluster, "spread", [base + i * 1000 for i in range(RECORDS)], {})
    leader, _ = _leader(cluster, "spread")
    down = next(n for n in written.leaders if n != leader)
    assert written.leaders.count(down) == SEGMENT_ENTRIES
    first_down = written.leaders.index(down)
    bootstrap = cluster.nodes[leader].bootstrap
    targets = [written.stamps[i] for i in range(0, RECORDS, 5)]
    expected = [(0, _first_at_or_after(written.stamps, t)) for t in targets]
    assert _answers(bootstrap, written, targets) == expected

    cluster.nodes[down].kill()
    got = _answers(bootstrap, written, targets)
    for target, answer, want in zip(targets, got, expected, strict=True):
        if want[1] < first_down:
            assert answer == want, f"target {target} lies before node {down}'s segments"
        else:
            assert answer == (ErrorCode.LEADER_NOT_AVAILABLE, -1), f"target {target}"
    assert _list(bootstrap, "spread", MAX_TIMESTAMP).error_code == ErrorCode.LEADER_NOT_AVAILABLE
    assert (_list(bootstrap, "spread", LATEST).error_code,
            _list(bootstrap, "spread", LATEST).offset) == (0, RECORDS)
    earliest = _list(bootstrap, "spread", EARLIEST)
    if written.leaders[0] == down:
        assert earliest.error_code == ErrorCode.LEADER_NOT_AVAILABLE
    else:
        assert (earliest.error_code, earliest.offset) == (0, 0)

    cluster.nodes[down].start(timeout=60)
    deadline = time.monotonic() + 30
    while (again := _answers(bootstrap, written, targets)) != expected:
        assert time.monotonic() < deadline, f"after node {down} returned: {again}"
        time.sleep(0.2)

    cluster.nodes[down].kill()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    removed = subprocess.run(
        [sys.executable, "-m", "broker.cli", "cluster", "remove-node",
         "--via", f"127.0.0.1:{cluster.raft_ports[leader]}", str(down)],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT)
    assert removed.returncode == 0, removed.stderr
    # Its records are gone for good: answers come from the segments that remain.
    held = [n != down for n in written.leaders]
    after = [(0, _first_at_or_after(written.stamps, t, held=lambda i: held[i])) for t in targets]
    assert _answers(bootstrap, written, targets) == after
    assert _list(bootstrap, "spread", EARLIEST).offset == held.index(True)
