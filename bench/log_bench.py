"""Log engine benchmark: append and scan throughput against raw-file ceilings.

For every batch size, flush policy and io backend (io_uring only where the probe says it
works here; the first line says which), the engine appends the same batches
as a plain sequential os.write loop that calls os.fdatasync on the same cadence. The two
take turns in 40 small blocks in fresh files; the ratio shown is the median over blocks
of raw time / engine time (1.0 = as fast as the raw file), MiB/s are from the totals.
Reads scan the whole log with 1 MiB fetches, cold (pages dropped with
POSIX_FADV_DONTNEED) and warm, next to a raw pread scan of the same files.
Group commit: AsyncLog with flush.messages=1 over 8 partitions with 4 appends in flight
each, against one append at a time to one partition (16 KiB batches, each backend);
the ratio is how much the shared flusher gains.

    .venv/bin/python bench/log_bench.py [--quick] [--dir PATH]

The last line sums up: RESULT log append_ratio_min=<lowest engine/raw ratio>.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from broker.log import LogConfig, PartitionLog
from broker.log.flusher import AsyncLog, Flusher
from broker.log.uring_probe import probe_io_uring
from broker.protocol.records import encode_batch

MIB = 1 << 20
RECORD_BYTES = 1024
FLUSH_MS = 20
FLUSH_EVERY_BYTES = 4 * MIB


@dataclass(slots=True)
class Policy:
    name: str
    flush_messages: int | None
    flush_ms: int | None


def policies(records_per_batch: int) -> list[Policy]:
    every_n = max(1, FLUSH_EVERY_BYTES // RECORD_BYTES)
    return [
        Policy("os (no flush)", None, None),
        Policy("flush.messages=1", 1, None),
        Policy(f"flush.messages={every_n}", every_n, None),
        Policy(f"flush.ms={FLUSH_MS}", None, FLUSH_MS),
    ]


def make_batch(batch_bytes: int) -> tuple[bytes, int]:
    count = max(1, batch_bytes // RECORD_BYTES)
    value = os.urandom(RECORD_BYTES - 20)
    records = [(None, value) for _ in range(count)]
    return encode_batch(records), count


class SyncCadence:
    """Decides, after each write, whether the raw loop syncs: the engine's rules."""

    def __init__(self, policy: Policy, records_per_batch: int) -> None:
        self.policy = policy
        self.records = records_per_batch
        self.pending = 0
        self.last = time.monotonic()

    def after_write(self) -> bool:
        self.pending += self.records
        p = self.policy
        now = time.monotonic()
        due = (p.flush_messages is not None and self.pending >= p.flush_messages) or (
            p.flush_ms is not None and (now - self.last) * 1000 >= p.flush_ms
        )
        if due:
            self.pending = 0
            self.last = now
        return due


class RawWriter:
    """The ceiling: os.write of the same bytes, fdatasync on the engine's cadence."""

    def __init__(self, directory: str, policy: Policy, records: int) -> None:
        self.path = os.path.join(directory, "raw.bin")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.cadence = SyncCadence(policy, records)

    def write(self, data: bytes, count: int) -> None:
        fd, cadence = self.fd, self.cadence
        for _ in range(count):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if cadence.after_write():
                os.fdatasync(fd)

    def close(self) -> None:
        os.fdatasync(self.fd)
        os.close(self.fd)
        os.unlink(self.path)


class EngineWriter:
    def __init__(self, directory: str, policy: Policy, backend: str) -> None:
        self.directory = os.path.join(directory, "log")
        config = LogConfig(
            flush_messages=policy.flush_messages, flush_ms=policy.flush_ms, io_backend=backend
        )
        self.log = PartitionLog.open(self.directory, config)

    def write(self, data: bytes, count: int) -> None:
        append = self.log.append
        for _ in range(count):
            append(data)

    def close(self) -> None:
        self.log.close()
        shutil.rmtree(self.directory)


def paired_run(
    directory: str, data: bytes, appends: int, policy: Policy, records: int, backend: str
) -> tuple[float, float, list[float]]:
    """Engine and raw writer take turns in small blocks, so load from other processes
    and the kernel's writeback hit both alike. Returns total seconds of each and the
    per-block raw/engine time ratios."""
    engine = EngineWriter(directory, policy, backend)
    raw = RawWriter(directory, policy, records)
    blocks = 40
    per_block = max(1, appends // blocks)
    engine_s = raw_s = 0.0
    ratios: list[float] = []
    clock = time.perf_counter
    try:
        for block in range(blocks):
            # Alternate which goes first within a pair.
            order = (engine, raw) if block % 2 else (raw, engine)
            spent = {}
            for writer in order:
                start = clock()
                writer.write(data, per_block)
                spent[writer] = clock() - start
            engine_s += spent[engine]
            raw_s += spent[raw]
            ratios.append(spent[raw] / spent[engine])
    finally:
        engine.close()
        raw.close()
    return engine_s, raw_s, ratios


def appends_for(
    directory: str, data: bytes, policy: Policy, records: int, budget_s: float, cap: int
) -> int:
    """How many appends fit in the time budget, probed with the raw writer."""
    probe = max(1, min(cap // len(data), (8 * MIB) // len(data)))
    raw = RawWriter(directory, policy, records)
    start = time.perf_counter()
    raw.write(data, probe)
    elapsed = time.perf_counter() - start
    raw.close()
    wanted = int(probe * budget_s / max(elapsed, 1e-6))
    return max(40, min(cap // len(data), wanted))


def backends() -> list[str]:
    """posix, and io_uring where the probe (a child process) says it works here."""
    probe = probe_io_uring()
    if probe.ok:
        print(f"io_uring: available (probe {probe.elapsed_ms:.0f} ms)")
        return ["posix", "io_uring"]
    print(f"io_uring: unavailable, its cases are left out ({probe.reason})")
    return ["posix"]


def bench_append(directory: str, quick: bool) -> float:
    budget = 1.5 if quick else 5.0
    cap = (128 if quick else 1024) * MIB
    lowest = float("inf")
    names = backends()
    print(
        f"{'append':<8} {'batch':>6} {'policy':<22} {'backend':<9} {'MiB/s':>9} {'raw MiB/s':>10} {'ratio':>6}"
    )
    for batch_bytes in (16 * 1024, MIB):
        data, records = make_batch(batch_bytes)
        label = f"{batch_bytes // 1024}K" if batch_bytes < MIB else f"{batch_bytes // MIB}M"
        for policy in policies(records):
            appends = appends_for(directory, data, policy, records, budget, cap)
            for backend in names:
                # Start each case with no dirty pages left by the one before: a previous
                # no-flush case leaves gigabytes for writeback, which makes the first
                # durable case's fdatasyncs wait on it at random.
                os.sync()
                engine_s, raw_s, ratios = paired_run(
                    directory, data, appends, policy, records, backend
                )
                total = len(ratios) * max(1, appends // len(ratios)) * len(data)
                ratio = statistics.median(ratios)
                lowest = min(lowest, ratio)
                print(
                    f"{'append':<8} {label:>6} {policy.name:<22} {backend:<9} "
                    f"{total / engine_s / MIB:>9.0f} {total / raw_s / MIB:>10.0f} {ratio:>6.2f}",
                    flush=True,
                )
    return lowest


GROUP_PARTITIONS = 8
GROUP_IN_FLIGHT = 4


async def _durable_appends(
    directory: str, backend: str, data: bytes, partitions: int, in_flight: int, seconds: float
) -> float:
    """MiB/s of durable (flush.messages=1) appends through AsyncLog and one Flusher, with
    `in_flight` appends awaited at once on each of `partitions` logs, for `seconds`."""
    config = LogConfig(flush_messages=1, io_backend=backend)
    flusher = Flusher()
    logs = [
        AsyncLog(PartitionLog.open(os.path.join(directory, f"group-{i}"), config), flusher)
        for i in range(partitions)
    ]
    written = 0
    deadline = time.perf_counter() + seconds

    async def writer(log: AsyncLog) -> None:
        nonlocal written
        while time.perf_counter() < deadline:
            await log.append(data)
            written += len(data)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(writer(log) for log in logs for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
    finally:
        for log in logs:
            log.close()
        flusher.stop()
        for i in range(partitions):
            shutil.rmtree(os.path.join(directory, f"group-{i}"), ignore_errors=True)
    return written / elapsed / MIB


def bench_group_commit(directory: str, quick: bool) -> None:
    seconds = 2.0 if quick else 6.0
    data, _ = make_batch(16 * 1024)
    names = backends()
    print(f"{'group commit (16K, flush.messages=1)':<40} {'backend':<9} {'MiB/s':>7} "
          f"{'one at a time':>14} {'ratio':>6}")
    for backend in names:
        os.sync()
        alone = asyncio.run(_durable_appends(directory, backend, data, 1, 1, seconds))
        os.sync()
        group = asyncio.run(_durable_appends(
            directory, backend, data, GROUP_PARTITIONS, GROUP_IN_FLIGHT, seconds))
        label = f"{GROUP_PARTITIONS} partitions x {GROUP_IN_FLIGHT} in flight"
        print(f"{label:<40} {backend:<9} {group:>7.0f} {alone:>14.0f} {group / alone:>6.2f}",
              flush=True)


def drop_cache(paths: list[str]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(action: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    size = action()
    return time.perf_counter() - start, size


def bench_read(directory: str, quick: bool) -> None:
    log_dir = os.path.join(directory, "scan")
    total = (128 if quick else 512) * MIB
    data, _ = make_batch(16 * 1024)
    config = LogConfig(segment_bytes=64 * MIB, io_backend="posix")
    with PartitionLog.open(log_dir, config) as log:
        for _ in range(total // len(data)):
            log.append(data)
    files = sorted(os.path.join(log_dir, f) for f in os.listdir(log_dir) if f.endswith(".log"))

    reader = PartitionLog.open(log_dir, config)

    def scan_log() -> int:
        read = 0
        offset = 0
        end = reader.log_end_offset
        while offset < end:
            result = reader.read(offset, MIB)
            read += len(result.data)
            offset = result.next_offset
        return read

    fds = [os.open(path, os.O_RDONLY) for path in files]

    def scan_raw() -> int:
        read = 0
        for fd in fds:
            pos = 0
            while chunk := os.pread(fd, MIB, pos):
                pos += len(chunk)
                read += len(chunk)
        return read

    print(f"{'read':<8} {'scan':<6} {'MiB/s':>9} {'raw MiB/s':>10} {'ratio':>6}")
    for temperature in ("cold", "warm"):
        if temperature == "cold":
            drop_cache(files)
        engine_s, size = timed(scan_log)
        if temperature == "cold":
            drop_cache(files)
        raw_s, raw_size = timed(scan_raw)
        assert size == raw_size, (size, raw_size)
        rate, ceiling = size / engine_s / MIB, raw_size / raw_s / MIB
        print(
            f"{'read':<8} {temperature:<6} {rate:>9.0f} {ceiling:>10.0f} {rate / ceiling:>6.2f}",
            flush=True,
        )
    shutil.rmtree(log_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs; finishes within 60 s")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="walrus-log-bench-", dir=args.dir)
    started = time.perf_counter()
    try:
        lowest = bench_append(directory, args.quick)
        bench_read(directory, args.quick)
        bench_group_commit(directory, args.quick)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"elapsed {time.perf_counter() - started:.1f} s")
    print(f"RESULT log append_ratio_min={lowest:.2f}")


if __name__ == "__main__":
    main()
