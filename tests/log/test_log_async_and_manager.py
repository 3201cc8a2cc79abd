"""The asyncio face of the log (group commit on a flusher thread) and the manager that
owns a data directory of partitions."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from broker.log import (
    AsyncLog,
    Flusher,
    LogClosedError,
    LogConfig,
    LogManager,
    PartitionLog,
    PosixBackend,
    UringBackend,
)

from .helpers import batch, read_all, small_config

pytestmark = pytest.mark.unit


class CountingBackend(PosixBackend):
    """The POSIX backend, counting the fdatasyncs the flusher asks for."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def sync_many(self, fds):  # type: ignore[no-untyped-def]
        self.batches.append(len(fds))
        return super().sync_many(fds)


def test_async_appends_with_flush_messages_1_are_durable_and_share_syncs(tmp_path):
    backend = CountingBackend()
    config = small_config(segment_bytes=1 << 20, flush_messages=1)
    log = PartitionLog.open(str(tmp_path), config, backend=backend)
    flusher = Flusher()
    alog = AsyncLog(log, flusher)

    async def produce() -> list:
        return await asyncio.gather(*(alog.append(batch(1, tag=i)) for i in range(200)))

    try:
        results = asyncio.run(produce())
        assert sorted(r.first_offset for r in results) == list(range(200))
        assert all(r.durable for r in results)
        assert log.flushed_offset == 200
        # Appends that waited together were covered by shared fdatasyncs.
        assert 1 <= sum(backend.batches) < 200
    finally:
        flusher.stop()
        alog.close()


@pytest.mark.parametrize("backend_type", [PosixBackend, UringBackend], ids=lambda t: t.name)
def test_flusher_syncs_many_partitions_together_and_reports_each(tmp_path, backend_type):
    backend = backend_type()
    config = small_config(segment_bytes=1 << 20, flush_messages=1)
    logs = [PartitionLog.open(str(tmp_path / f"t-{i}"), config, backend=backend) for i in range(6)]
    flusher = Flusher()
    wrapped = [AsyncLog(log, flusher) for log in logs]

    async def produce() -> list:
        return await asyncio.gather(
            *(w.append(batch(1, tag=i)) for i in range(20) for w in wrapped)
        )

    try:
        results = asyncio.run(produce())
        assert all(r.durable for r in results)
        assert [log.flushed_offset for log in logs] == [20] * 6
        # A log closed under a waiting append fails that append only.
        for log in logs[:3]:
            log.append(batch(2), defer_sync=True)
        logs[1].close()
        # The same log twice in one call is synced once (no self-deadlock).
        requests = [(logs[0], 21), (logs[1], 22), (logs[2], 22), (logs[0], 22)]
        outcomes = PartitionLog.sync_many(requests, backend)
        assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
        assert isinstance(outcomes[1], LogClosedError)
        assert logs[0].flushed_offset == logs[2].flushed_offset == 22
    finally:
        flusher.stop()
        for w in wrapped:
            w.close()
        backend.close()


def test_flush_ms_is_applied_by_the_flusher_when_appends_stop(tmp_path):
    log = PartitionLog.open(str(tmp_path), small_config(flush_ms=50))
    flusher = Flusher(tick_seconds=0.01)
    alog = AsyncLog(log, flusher)
    try:
        log.append(batch(3))
        log.append(batch(3))
        assert log.flushed_offset < 6
        deadline = time.monotonic() + 5
        while log.flushed_offset < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.flushed_offset == 6
    finally:
        flusher.stop()
        alog.close()


def test_without_a_flush_policy_appends_are_not_synced(tmp_path):
    with PartitionLog.open(str(tmp_path), small_config()) as log:
        result = log.append(batch(2))
        assert not result.durable and not result.needs_sync
        assert log.flushed_offset == 0
        log.flush()
        assert log.flushed_offset == 2


def test_manager_opens_creates_and_deletes_partitions(tmp_path):
    data = str(tmp_path / "data")
    configs = {"fast": LogConfig(segment_bytes=2048, retention_ms=1000, io_backend="posix")}

    def config_for(topic: str) -> LogConfig:
        return configs.get(topic, LogConfig(io_backend="posix"))

    manager = LogManager(data, LogConfig(io_backend="posix"), config_for=config_for)
    try:
        for partition in range(3):
            alog = manager.get_or_create("my-topic", partition)
            asyncio.run(alog.append(batch(2)))
        fast = manager.get_or_create("fast", 0)
        for i in range(30):
            fast.log.append(batch(2, value_size=100, timestamp=1_000 + i))
        assert manager.apply_retention(now_ms=10_000_000) > 0
    finally:
        manager.close()
    assert sorted(os.listdir(data)) == ["fast-0", "my-topic-0", "my-topic-1", "my-topic-2"]

    manager = LogManager(data, LogConfig(io_backend="posix"), config_for=config_for)
    try:
        assert manager.open_all() == [
            ("fast", 0),
            ("my-topic", 0),
            ("my-topic", 1),
            ("my-topic", 2),
        ]
        assert manager.get("my-topic", 1).log.log_end_offset == 2
        assert read_all(manager.get("my-topic", 2).log) == [(0, 2)]
        assert manager.delete_topic("my-topic") == 3
        assert manager.partitions() == [("fast", 0)]
        assert sorted(os.listdir(data)) == ["fast-0"]
    finally:
        manager.close()
