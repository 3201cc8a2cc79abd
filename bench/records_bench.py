"""Record batch validation speed against its ceiling, a bare CRC-32C over the same bytes.

validate_batch runs once per produced batch, so its cost beyond the checksum itself is
the overhead the produce path pays. Everything is measured in one run, so the ratios
hold on a noisy shared machine even where the absolute figures do not.

    .venv/bin/python bench/records_bench.py [--quick]

The last line is `RESULT records validate_1MiB_ratio=<...> validate_16KiB_ratio=<...>
walk_16KiB_ratio=<...>` (ours / ceiling throughput; 1.0 would be free).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crc32c import crc32c

from broker.protocol.records import (
    Compression,
    decode_records,
    encode_batch,
    iter_batches,
    parse_header,
    set_base_offset,
    validate_batch,
)


def batch_of(size: int, record_size: int = 1000) -> bytes:
    count = max(1, size // (record_size + 20))
    value = bytes(range(256)) * (record_size // 256 + 1)
    return encode_batch([(b"key", value[:record_size])] * count, base_timestamp=0)


def rate(action: Callable[[], object], repeats: int, rounds: int) -> float:
    """Median calls per second over ``rounds`` timed loops of ``repeats`` calls."""
    return statistics.median(_timed(action, repeats) for _ in range(rounds))


def _timed(action: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        action()
    return repeats / (time.perf_counter() - start)


def paired(
    ours: Callable[[], object], ceiling: Callable[[], object], repeats: int, rounds: int
) -> tuple[float, float, float]:
    """Median rates of both and the median of per-round ratios.

    Timing the two back to back in each round keeps load from other processes on this
    shared machine from landing on one side only.
    """
    pairs = [(_timed(ours, repeats), _timed(ceiling, repeats)) for _ in range(rounds)]
    return (
        statistics.median(p[0] for p in pairs),
        statistics.median(p[1] for p in pairs),
        statistics.median(p[0] / p[1] for p in pairs),
    )


def mib_per_s(calls_per_s: float, size: int) -> float:
    return calls_per_s * size / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    scale = 1 if args.quick else 5

    results: dict[str, float] = {}
    print(f"{'case':<34}{'ours MiB/s':>12}{'crc32c MiB/s':>14}{'ratio':>8}")
    for label, size, repeats in (("1MiB", 1 << 20, 40 * scale), ("16KiB", 16 << 10, 2000 * scale)):
        batch = memoryview(batch_of(size))
        ours, ceiling, ratio = paired(
            lambda b=batch: validate_batch(b), lambda b=batch: crc32c(b), repeats, rounds
        )
        ours, ceiling = mib_per_s(ours, len(batch)), mib_per_s(ceiling, len(batch))
        results[f"validate_{label}_ratio"] = ratio
        print(f"{'validate_batch ' + label:<34}{ours:>12.0f}{ceiling:>14.0f}{ratio:>8.2f}")

    # A produce request or log region of many small batches: walk, validate, re-stamp.
    one = batch_of(16 << 10)
    region = bytearray(one * 256)
    view = memoryview(region)

    def walk_and_assign() -> None:
        for offset, (pos, _header) in enumerate(iter_batches(view)):
            set_base_offset(view, pos, offset)

    def crc_each() -> None:
        for pos in range(0, len(region), len(one)):
            crc32c(view[pos : pos + len(one)])

    ours, ceiling, ratio = paired(walk_and_assign, crc_each, 4 * scale, rounds)
    ours, ceiling = mib_per_s(ours, len(region)), mib_per_s(ceiling, len(region))
    results["walk_16KiB_ratio"] = ratio
    print(f"{'iter_batches+set_base_offset 16KiB':<34}{ours:>12.0f}{ceiling:>14.0f}{ratio:>8.2f}")

    small = memoryview(batch_of(16 << 10))
    headers_per_s = rate(lambda: parse_header(small), 20_000 * scale, rounds)
    print(f"parse_header: {headers_per_s / 1e6:.2f} M calls/s")

    for codec in (Compression.NONE, Compression.LZ4, Compression.ZSTD, Compression.GZIP):
        packed = encode_batch([(b"k", b"v" * 100)] * 500, compression=codec, base_timestamp=0)
        decoded = rate(lambda p=packed: decode_records(p), 20 * scale, rounds)
        print(
            f"decode_records 500 x 100 B {codec.name.lower():<6}: {decoded * 500 / 1e3:.0f} k records/s"
        )

    print("RESULT records " + " ".join(f"{name}={value:.2f}" for name, value in results.items()))


if __name__ == "__main__":
    main()
