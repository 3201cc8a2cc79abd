"""Shared builders for the log tests: real record batches from the protocol codec."""

from __future__ import annotations

import time

import pytest

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import encode_batch, iter_batches

# Backend names to parametrise a test with; the io_uring case skips, with the probe's
# reason, where io_uring does not work (tests/log/conftest.py).
IO_BACKENDS = ["posix", pytest.param("io_uring", marks=pytest.mark.io_uring)]


def batch(
    count: int = 1, *, value_size: int = 10, timestamp: int | None = None, tag: int = 0
) -> bytes:
    """A batch of `count` records whose values identify them (tag, index); stamped with
    the current time unless told otherwise."""
    return encode_batch(
        [
            (f"k{tag}-{i}".encode(), f"{tag}:{i}:".encode().ljust(value_size, b"x"))
            for i in range(count)
        ],
        base_timestamp=time.time_ns() // 1_000_000 if timestamp is None else timestamp,
    )


def headers_of(data: bytes | memoryview) -> list[tuple[int, int]]:
    """(base offset, next offset) of each batch in `data`, checking every CRC."""
    return [(h.base_offset, h.next_offset) for _, h in iter_batches(bytes(data), validate=True)]


def read_all(
    log: PartitionLog, start: int | None = None, max_bytes: int = 1 << 20
) -> list[tuple[int, int]]:
    """Walk the log from `start` to its end, batch by batch."""
    offset = log.log_start_offset if start is None else start
    out: list[tuple[int, int]] = []
    while offset < log.log_end_offset:
        result = log.read(offset, max_bytes)
        spans = headers_of(result.data)
        assert spans, f"empty read at {offset}"
        out.extend(spans)
        offset = spans[-1][1]
    return out


def small_config(**changes: object) -> LogConfig:
    base = {"segment_bytes": 4096, "index_interval_bytes": 256, "io_backend": "posix"}
    base.update(changes)
    return LogConfig(**base)  # type: ignore[arg-type]
