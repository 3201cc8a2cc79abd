"""A full disk (ENOSPC on a small tmpfs) and a file-size limit (EFBIG under
RLIMIT_FSIZE) surface as LogStorageError; the log stays consistent and readable."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from broker.log import LogStorageError, PartitionLog, UringBackend
from broker.log.io_backend import SMALL_DURABLE_WRITE

from .helpers import IO_BACKENDS, batch, read_all, small_config

pytestmark = pytest.mark.fault


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); EFBIG test covers it")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.parametrize("backend", IO_BACKENDS)
def test_disk_full_is_a_storage_error_and_the_log_stays_readable(tiny_tmpfs, backend):
    directory = str(tiny_tmpfs / "topic-0")
    filler = tiny_tmpfs / "reserve"
    filler.write_bytes(b"\0" * 32 * 1024)
    config = small_config(segment_bytes=1 << 20, flush_messages=1, io_backend=backend)
    log = PartitionLog.open(directory, config)
    accepted = 0
    with pytest.raises(LogStorageError) as caught:
        for i in range(1000):
            log.append(batch(3, value_size=2000, tag=i))
            accepted += 1
    assert caught.value.errno == errno.ENOSPC
    assert accepted > 10
    # Nothing of the failed append is visible, on disk or in memory.
    assert log.log_end_offset == 3 * accepted
    assert read_all(log) == [(3 * i, 3 * i + 3) for i in range(accepted)]
    with pytest.raises(LogStorageError):
        log.append(batch(3, value_size=2000))
    filler.unlink()
    assert log.append(batch(1)).first_offset == 3 * accepted
    log.close()
    with PartitionLog.open(directory, config) as reopened:
        assert reopened.log_end_offset == 3 * accepted + 1
        assert reopened.recovery.truncated_bytes == 0


@pytest.mark.io_uring
def test_io_uring_large_durable_write_on_a_full_disk_is_enospc(tiny_tmpfs):
    """A durable write large enough to go through the ring lands short on a nearly full
    disk; finishing it with plain calls raises the disk's error, not a partial success."""
    backend = UringBackend()
    (tiny_tmpfs / "reserve").write_bytes(b"\0" * 160 * 1024)
    fd = os.open(tiny_tmpfs / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with pytest.raises(LogStorageError) as caught:
            backend.write(fd, [os.urandom(SMALL_DURABLE_WRITE)] * 2, 0, sync=True)
        assert caught.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
        backend.close()


WRITER = textwrap.dedent(
    """
    import json, resource, signal, sys
    from broker.log import LogStorageError, PartitionLog
    from tests.log.helpers import batch, small_config
    directory, backend, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Past the limit the kernel sends SIGXFSZ; ignored, the write fails with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = PartitionLog.open(directory, small_config(segment_bytes=1 << 20, flush_messages=1,
                                                     io_backend=backend))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    accepted, error = 0, None
    for i in range(1000):
        try:
            log.append(batch(3, value_size=2000, tag=i))
            accepted += 1
        except LogStorageError as exc:
            error = exc.errno
            break
    end = log.log_end_offset
    readable = log.read(0, 1 << 30).next_offset
    print(json.dumps({"accepted": accepted, "errno": error, "end": end, "readable": readable}))
    """
)


@pytest.mark.parametrize("backend", IO_BACKENDS)
def test_file_size_limit_is_a_storage_error(tmp_path, backend):
    directory = str(tmp_path / "topic-0")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", WRITER, directory, backend, str(100_000)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errno"] == errno.EFBIG
    assert report["end"] == report["readable"] == 3 * report["accepted"] > 0
    with PartitionLog.open(directory, small_config()) as log:
        assert log.log_end_offset == 3 * report["accepted"]
        assert log.recovery.truncated_bytes == 0
