"""A writer killed with SIGKILL at random points: after every reopen each flushed batch
is intact, offsets continue densely, and the tail is clean (no garbage surfaces)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from broker.log import PartitionLog
from broker.protocol.records import decode_records, encode_batch, iter_batches

from .helpers import IO_BACKENDS, small_config

pytestmark = [pytest.mark.fault, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_writer.py")
KILL_POINTS = 12


def run_writer(directory: str, backend: str, flush_messages: int, first_tag: int, delay: float):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, WRITER, directory, backend, str(flush_messages), str(first_tag)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.startswith("ready"), proc.stderr.read() if proc.stderr else ready
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    acks = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 7 and parts[0] == "ack":
            acks.append(tuple(int(p) for p in parts[1:]))
    return int(ready.split()[1]), acks


def tear_tail(directory: str, rng: random.Random) -> None:
    """Leave what a power cut mid-write leaves: part of a batch past the end."""
    files = sorted(f for f in os.listdir(directory) if f.endswith(".log"))
    torn = encode_batch([(b"torn", b"t" * 500)] * 3)
    with open(os.path.join(directory, files[-1]), "ab") as f:
        f.write(torn[: rng.randrange(1, len(torn))])


@pytest.mark.parametrize("backend", IO_BACKENDS)
def test_sigkill_at_random_points_never_loses_flushed_batches(tmp_path, backend):
    rng = random.Random(f"20261127-{backend}")
    directory = str(tmp_path / "crash-0")
    flushed_batches: dict[int, tuple[int, int]] = {}  # base offset -> (next, tag)
    expected_end = 0
    tag = 0
    for round_no in range(KILL_POINTS):
        flush_messages = 1 if round_no % 3 else 4
        start, acks = run_writer(directory, backend, flush_messages, tag, rng.uniform(0.02, 0.25))
        # Offsets continue densely from where the previous run's log ended.
        assert start >= expected_end
        flushed = 0
        for base, nxt, ack_tag, flushed_offset, _, _ in acks:
            assert base == (acks[0][0] if base == acks[0][0] else base)
            flushed = max(flushed, flushed_offset)
            if nxt <= flushed_offset:
                flushed_batches[base] = (nxt, ack_tag)
        for base, nxt, ack_tag, *_ in acks:
            if nxt <= flushed:
                flushed_batches[base] = (nxt, ack_tag)
        tag = (acks[-1][2] + 1) if acks else tag + 1
        if round_no % 4 == 3:
            tear_tail(directory, rng)
        with PartitionLog.open(directory, small_config()) as log:
            end = log.log_end_offset
            assert end >= flushed
            # The whole log reads back as valid, dense batches up to its end.
            data = bytes(log.read(0, 1 << 30).data)
            walked = []
            for _, header in iter_batches(data, validate=True):
                walked.append((header.base_offset, header.next_offset))
            # Several files: keep reading until the end.
            offset = walked[-1][1] if walked else 0
            while offset < end:
                chunk = bytes(log.read(offset, 1 << 30).data)
                for _, header in iter_batches(chunk, validate=True):
                    walked.append((header.base_offset, header.next_offset))
                offset = walked[-1][1]
            assert [b for b, _ in walked] == [0] + [n for _, n in walked[:-1]]
            assert walked[-1][1] == end
            # Every flushed batch is there, byte for byte what the writer sent.
            for base, (nxt, ack_tag) in flushed_batches.items():
                result = log.read(base, 1)
                header, records = decode_records(
                    bytes(result.data)[: 12 + int.from_bytes(bytes(result.data)[8:12], "big")]
                )
                assert (header.base_offset, header.next_offset) == (base, nxt)
                assert records[0].value.startswith(b"%d:0:" % ack_tag)
            expected_end = end
    assert len(flushed_batches) > 25
