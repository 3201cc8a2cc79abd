"""The copier's staging logs on a real in-process node: a copy cut short by a crash
resumes from where it stopped, one that does not match its assignment starts again, and
one no longer assigned is deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_runner import NodeRunner

from broker.log import PartitionLog
from broker.protocol.records import Record, encode_batch
from broker.replication.segment_copier import COPY_DIR, CopyJob

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path_factory.mktemp("copy-node") / "data")
    # The copier's own loop would delete these hand-made staging logs: stop it.
    node.run(node.node.copier.stop())
    try:
        yield node
    finally:
        node.close()


def _batch(n: int, base: int) -> bytes:
    return encode_batch([Record(i, 0, None, f"v{base + i}".encode(), []) for i in range(n)],
                        base_offset=base)


def _half_copy(runner: NodeRunner, job: CopyJob, upto: int) -> Path:
    """A staging log as a crash leaves it: the segment begun, part of it written."""
    copier = runner.node.copier
    directory = runner.node.config.data_dir / COPY_DIR / job.staging_name
    staging = copier._open_staging(str(directory), job)
    staging.append(_batch(upto - job.base_offset, job.base_offset), epoch=job.epoch,
                   replicated=True)
    staging.close()
    return directory


def test_a_half_copied_segment_resumes_from_its_end(runner: NodeRunner) -> None:
    job = CopyJob("t", 0, 4, 100, 140)
    directory = _half_copy(runner, job, 115)
    staging = runner.node.copier._open_staging(str(directory), job)
    try:
        assert staging.log_end_offset == 115
        found = runner.node.copier._ours(staging, job)
        assert found is not None and not found.sealed
    finally:
        staging.close()


def test_a_staging_log_of_another_segment_is_started_again(runner: NodeRunner) -> None:
    old = CopyJob("u", 0, 4, 100, 140)
    directory = _half_copy(runner, old, 120)
    moved = CopyJob("u", 0, 4, 90, 140)  # same name, other bounds: not this copy
    staging = runner.node.copier._open_staging(str(directory), moved)
    try:
        assert staging.log_end_offset == 90
        assert [s.base_offset for s in staging.segments() if s.epoch == 4] == [90]
    finally:
        staging.close()


def test_a_copy_no_longer_assigned_is_deleted(runner: NodeRunner) -> None:
    kept = CopyJob("v", 0, 2, 0, 20)
    dropped = CopyJob("v", 0, 3, 20, 40)
    keep_dir = _half_copy(runner, kept, 10)
    drop_dir = _half_copy(runner, dropped, 30)
    runner.node.copier._discard_unassigned({kept})
    assert keep_dir.is_dir() and not drop_dir.exists()
    reopened = PartitionLog.open(str(keep_dir), epoch=-1)
    try:
        assert reopened.log_end_offset == 10
    finally:
        reopened.close()
