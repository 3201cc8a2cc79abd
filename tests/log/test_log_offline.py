"""A partition whose files cannot be read goes offline alone: every way a manifest can
be unreadable is a LogStorageError, and the log manager opens the other partitions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from broker.log import LogManager, LogStorageError, PartitionOfflineError
from broker.log.manifest import MANIFEST_NAME, load_manifest

from .helpers import batch, small_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("content", [
    '{"version": 1, "log_start_offset": ',  # torn
    "[1, 2, 3]",  # JSON, not an object
    '{"version": 1, "segments": []}',  # a key missing
    '{"version": 1, "log_start_offset": "x", "segments": []}',
    '{"version": 1, "log_start_offset": 0, "segments": [7]}',
    '{"version": 1, "log_start_offset": 0, "segments": [{"epoch": 1}]}',
    '{"version": 1, "log_start_offset": 0, "segments": [{"epoch": 1, "base_offset": 0, "colour": 2}]}',
    '{"version": 1, "log_start_offset": 0, "segments": [{"epoch": "1", "base_offset": 0}]}',
    '{"version": 2, "log_start_offset": 0, "segments": []}',
    "\x00\xff garbage",
])
def test_every_unreadable_manifest_is_a_storage_error(tmp_path: Path, content: str) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes(content.encode("latin-1"))  # \xff: not UTF-8
    with pytest.raises(LogStorageError):
        load_manifest(str(tmp_path))


def test_one_unreadable_partition_goes_offline_and_the_others_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = LogManager(str(tmp_path), small_config())
    for key in (("t", 0), ("t", 1), ("u", 0)):
        manager.get_or_create(*key).log.append(batch(2))
    manager.close()
    (tmp_path / "t-0" / MANIFEST_NAME).write_text("[]")

    manager = LogManager(str(tmp_path), small_config())
    try:
        with caplog.at_level(logging.ERROR, logger="walrus.log"):
            assert manager.open_all() == [("t", 0), ("t", 1), ("u", 0)]
        assert "partition t-0 is offline" in caplog.text
        assert manager.partitions() == [("t", 1), ("u", 0)]
        assert manager.is_offline("t", 0) and not manager.is_offline("t", 1)
        assert manager.get_or_create("t", 1).log.log_end_offset == 2
        # Asked for again, it stays offline without the files being read again.
        caplog.clear()
        with pytest.raises(PartitionOfflineError):
            manager.get_or_create("t", 0)
        assert "offline" not in caplog.text
        # Deleting its topic removes it, offline or not; a new one starts clean.
        assert manager.delete_topic("t") == 2
        assert not manager.is_offline("t", 0)
        assert manager.get_or_create("t", 0).log.log_end_offset == 0
    finally:
        manager.close()
