"""Record batch validation speed against its ceiling, a bare CRC-32C over the same bytes,
and what checking every record of a produced batch costs on top of it.

validate_batch runs once per produced batch, so its cost beyond the checksum itself is
the overhead the produce path pays. Since produce also walks every batch's records
(contents.py), `--produce-check` (or a full run) times that walk per codec against
validate_batch alone, the header-only path produce had before, and measures how long
the event loop goes without a turn while the broker checks the worst batches it can
be sent. Everything is measured in one run, so the ratios hold on a noisy shared
machine even where the absolute figures do not.

    .venv/bin/python bench/records_bench.py [--quick] [--produce-check]

The last line is `RESULT records validate_1MiB_ratio=<...> validate_16KiB_ratio=<...>
walk_16KiB_ratio=<...> check_16KiB_<codec>_ratio=<...>...` (ours / ceiling throughput;
1.0 would be free; for check_*, throughput with the records check / without it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crc32c import crc32c

from broker.partitions.contents_check import check_contents, uncompressed_bound
from broker.protocol.records import (
    Compression,
    RecordError,
    check_batch_contents,
    compress,
    decode_records,
    encode_batch,
    iter_batches,
    parse_header,
    reframe_batch,
    set_base_offset,
    validate_batch,
)
from broker.protocol.records.varint import write_varint


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
    parser.add_argument("--produce-check", action="store_true",
                        help="only the cost of checking records on produce")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    scale = 1 if args.quick else 5

    results: dict[str, float] = {}
    if args.produce_check:
        produce_check(results, rounds, scale)
        print("RESULT records " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))
        return
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

    produce_check(results, rounds, scale)
    print("RESULT records " + " ".join(f"{name}={value:.2f}" for name, value in results.items()))


def produce_check(results: dict[str, float], rounds: int, scale: int) -> None:
    """µs per batch for the header-only path (validate_batch) and with every record
    checked (check_batch_contents), per codec and record size; then event-loop stalls."""
    print(f"\n{'produce check, per batch':<34}{'header µs':>10}{'+records µs':>12}"
          f"{'ns/record':>10}{'ratio':>7}")
    for record_size, batch_size in ((1000, 16 << 10), (100, 16 << 10), (1000, 1 << 20)):
        count = max(1, batch_size // (record_size + 10))
        value = bytes(range(256)) * (record_size // 256 + 1)
        # Values that compress about as well as text (half of each is a repeat).
        records = [(b"key", value[i % 256 : i % 256 + record_size // 2] * 2)
                   for i in range(count)]
        for codec in (Compression.NONE, Compression.GZIP, Compression.LZ4, Compression.ZSTD):
            batch = memoryview(encode_batch(records, compression=codec, base_timestamp=0))
            repeats = max(2, int(200_000 * scale // count // 10))
            checked, parsed, ratio = paired(
                lambda b=batch: check_batch_contents(b), lambda b=batch: validate_batch(b),
                repeats, rounds)
            label = f"{count} x {record_size} B {codec.name.lower()}"
            per_record = (1e9 / checked - 1e9 / parsed) / count
            print(f"{label:<34}{1e6 / parsed:>10.1f}{1e6 / checked:>12.1f}"
                  f"{per_record:>10.0f}{ratio:>7.2f}")
            if batch_size == 16 << 10 and record_size == 1000:
                results[f"check_16KiB_{codec.name.lower()}_ratio"] = ratio

    # The worst batches a client can send within max.message.bytes (1 MiB): records as
    # small as they come, uncompressed, and compressed to expand to near the bound; and
    # a bomb past it. The check yields every SLICE_RECORDS records; a ticker task
    # measures the longest time the loop went without running it.
    bound = uncompressed_bound(1 << 20)
    cases = {
        "none, 1 MiB of empty records": ("none_1MiB", encode_batch([(None, b"")] * 140_000)),
        "zstd, 60 MiB of empty records": ("zstd_60MiB", _empty_records_batch(bound - (4 << 20))),
        "gzip, 1 GiB of zeros (refused)": ("gzip_bomb", _gzip_zeros_batch(1 << 30)),
    }
    print(f"\n{'event loop during the check':<34}{'records':>9}{'check ms':>10}"
          f"{'longest stall ms':>18}")
    for label, (key, batch) in cases.items():
        count = validate_batch(batch).records_count
        elapsed, stall = asyncio.run(_loop_stall(batch, bound))
        print(f"{label:<34}{count:>9}{elapsed * 1e3:>10.0f}{stall * 1e3:>18.1f}")
        results[f"stall_ms_{key}"] = stall * 1e3


def _empty_records_batch(section_size: int) -> bytes:
    """A zstd batch of records with no key, value or headers, as many as fill
    ``section_size`` bytes: built without Record objects (millions of them)."""
    section = bytearray()
    count = 0
    while len(section) < section_size - 16:
        body = bytearray(b"\x00\x00")  # attributes, timestampDelta
        write_varint(body, count)
        body += b"\x01\x00\x00"  # null key, empty value, no headers
        write_varint(section, len(body))
        section += body
        count += 1
    return reframe_batch(encode_batch([(None, b"")]), compression=Compression.ZSTD,
                         section=compress(Compression.ZSTD, section),
                         records_count=count, last_offset_delta=count - 1)


def _gzip_zeros_batch(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    section = b"".join(packer.compress(chunk) for _ in range(size >> 20)) + packer.flush()
    return reframe_batch(encode_batch([(None, b"")]), compression=Compression.GZIP,
                         section=section)


async def _loop_stall(batch: bytes, bound: int) -> tuple[float, float]:
    done = False
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    with contextlib.suppress(RecordError):
        await check_contents(batch, validate_batch(batch), bound)
    elapsed = time.perf_counter() - started
    done = True
    await task
    return elapsed, longest


if __name__ == "__main__":
    main()
