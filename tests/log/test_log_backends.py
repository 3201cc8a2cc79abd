"""The two io backends write the same bytes; errors come back as LogStorageError."""

from __future__ import annotations

import errno
import logging
import os

import pytest

from broker.log import LogStorageError, PartitionLog, PosixBackend, UringBackend, open_backend
from broker.log.io_backend import SMALL_DURABLE_WRITE

from .helpers import IO_BACKENDS, batch, read_all, small_config

pytestmark = pytest.mark.unit

BACKENDS = [PosixBackend, pytest.param(UringBackend, marks=pytest.mark.io_uring)]


@pytest.mark.parametrize("backend_type", BACKENDS, ids=lambda t: t.name)
@pytest.mark.parametrize("sync", [False, True])
def test_backend_writes_chunks_at_offsets(tmp_path, backend_type, sync):
    backend = backend_type()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        chunks = [os.urandom(1000 + i) for i in range(100)]
        backend.write(fd, chunks[:50], 0, sync=sync)
        size = sum(map(len, chunks[:50]))
        backend.write(fd, [bytearray(c) for c in chunks[50:]], size, sync=sync)
        backend.sync(fd)
        assert (tmp_path / "f").read_bytes() == b"".join(chunks)
    finally:
        os.close(fd)
        backend.close()


@pytest.mark.parametrize("backend_type", BACKENDS, ids=lambda t: t.name)
def test_backend_reports_io_errors_as_log_storage_error(tmp_path, backend_type):
    (tmp_path / "f").write_bytes(b"x")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    backend = backend_type()
    try:
        with pytest.raises(LogStorageError) as caught:
            backend.write(fd, [b"abc", b"def"], 0, sync=True)
        assert caught.value.errno == errno.EBADF
    finally:
        os.close(fd)
        backend.close()


@pytest.mark.io_uring
def test_auto_picks_io_uring_where_it_initialises_and_logs_the_choice(caplog):
    # Told at INFO once per process, then at DEBUG: whichever this call is, it is logged.
    with caplog.at_level(logging.DEBUG, logger="walrus.log"):
        backend = open_backend("auto")
    try:
        assert backend.name == "io_uring"
        assert "io_uring" in caplog.text
    finally:
        backend.close()


@pytest.mark.io_uring
def test_partition_log_on_io_uring_with_sync_on_every_append(tmp_path):
    config = small_config(io_backend="io_uring", flush_messages=1, segment_bytes=2048)
    with PartitionLog.open(str(tmp_path), config) as log:
        assert log.backend.name == "io_uring"
        for i in range(30):
            assert log.append(batch(2, value_size=60, tag=i)).durable
    with PartitionLog.open(str(tmp_path), config) as log:
        assert read_all(log) == [(2 * i, 2 * i + 2) for i in range(30)]


def test_posix_writes_more_pieces_than_iov_max(tmp_path):
    backend = PosixBackend()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        chunks = [bytes([i % 251]) * (1 + i % 7) for i in range(3000)]
        backend.write(fd, [memoryview(c) for c in chunks], 5, sync=False)
        assert (tmp_path / "f").read_bytes() == b"\0" * 5 + b"".join(chunks)
    finally:
        os.close(fd)


@pytest.mark.parametrize("backend", IO_BACKENDS)
@pytest.mark.parametrize("flush_messages", [None, 1])
def test_one_append_of_many_batches_lands_whole(tmp_path, backend, flush_messages):
    # 700 batches are 1400 pieces to write: more than one vectored write takes.
    config = small_config(segment_bytes=1 << 24, io_backend=backend, flush_messages=flush_messages)
    with PartitionLog.open(str(tmp_path), config) as log:
        payload = b"".join(batch(1, tag=i) for i in range(700))
        assert log.append(payload).batch_base_offsets == list(range(700))
        assert read_all(log) == [(i, i + 1) for i in range(700)]


@pytest.mark.parametrize("backend_type", BACKENDS, ids=lambda t: t.name)
def test_sync_many_reports_each_file_on_its_own(tmp_path, backend_type):
    backend = backend_type()
    good = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT, 0o644) for i in range(3)]
    closed = os.open(tmp_path / "gone", os.O_RDWR | os.O_CREAT, 0o644)
    os.close(closed)
    try:
        results = backend.sync_many([good[0], closed, good[1], good[2]])
        assert [r is None for r in results] == [True, False, True, True]
        assert results[1].errno == errno.EBADF
    finally:
        for fd in good:
            os.close(fd)
        backend.close()


@pytest.mark.io_uring
@pytest.mark.parametrize("size", [16 * 1024, 2 * SMALL_DURABLE_WRITE])
def test_io_uring_durable_writes_small_and_large_land_whole(tmp_path, size):
    """Small durable writes take pwritev + fdatasync, large ones the linked ring entry:
    both must write every byte at its offset and report errors the same way."""
    backend = UringBackend()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        chunks = [os.urandom(size // 4) for _ in range(4)]
        backend.write(fd, chunks, 0, sync=True)
        backend.write(fd, chunks[::-1], size, sync=True)
        assert (tmp_path / "f").read_bytes() == b"".join(chunks) + b"".join(chunks[::-1])
    finally:
        os.close(fd)
    (tmp_path / "ro").write_bytes(b"x")
    fd = os.open(tmp_path / "ro", os.O_RDONLY)
    try:
        with pytest.raises(LogStorageError) as caught:
            backend.write(fd, [os.urandom(size)], 0, sync=True)
        assert caught.value.errno == errno.EBADF
    finally:
        os.close(fd)
        backend.close()
