"""Random sequences of append, read, seal, retention, truncation and reopen (clean or
crashed) against an in-memory model of what the log must hold."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.log import OffsetOutOfRangeError, PartitionLog
from broker.protocol.records import decode_records, iter_batches

from .helpers import batch, small_config

pytestmark = pytest.mark.unit


@dataclass(slots=True)
class ModelBatch:
    base: int
    next: int
    tag: int
    size: int


class _WarningLog(logging.Handler):
    """Collects the engine's warnings: the model never damages files, so any cut or
    index rebuild it reports is a bug."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.warnings = _WarningLog()
        logging.getLogger("walrus.log").addHandler(self.warnings)
        self.directory = tempfile.mkdtemp(prefix="walrus-log-model-")
        self.config = small_config(segment_bytes=1024, index_interval_bytes=128, retention_bytes=-1)
        self.log = PartitionLog.open(self.directory, self.config, epoch=0)
        self.batches: list[ModelBatch] = []
        self.start = 0
        self.epoch = 0
        self.sealed_end = 0
        self.tag = 0

    @property
    def end(self) -> int:
        return self.batches[-1].next if self.batches else 0

    def teardown(self) -> None:
        logging.getLogger("walrus.log").removeHandler(self.warnings)
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(count=st.integers(1, 6), value_size=st.integers(1, 400), batches=st.integers(1, 3))
    def append(self, count: int, value_size: int, batches: int) -> None:
        payload = b""
        for _ in range(batches):
            self.tag += 1
            payload += batch(count, value_size=value_size, tag=self.tag, timestamp=self.tag)
        result = self.log.append(payload)
        pos = 0
        for i, base in enumerate(result.batch_base_offsets):
            header = next(iter_batches(payload[pos:], validate=False))[1]
            self.batches.append(
                ModelBatch(base, base + count, self.tag - batches + 1 + i, header.size)
            )
            pos += header.size
        assert result.batch_base_offsets[0] == (
            self.batches[-batches - 1].next if len(self.batches) > batches else 0
        )
        assert result.log_end_offset == self.end

    @rule(data=st.data(), max_bytes=st.integers(1, 3000))
    def read(self, data: st.DataObject, max_bytes: int) -> None:
        live = [b for b in self.batches if b.next > self.start]
        if not live:
            return
        offset = data.draw(st.integers(self.start, self.end - 1))
        high_watermark = data.draw(st.one_of(st.none(), st.integers(offset, self.end)))
        result = self.log.read(offset, max_bytes, max_offset=high_watermark)
        got = [h for _, h in iter_batches(bytes(result.data))]
        first = next(i for i, b in enumerate(live) if b.base <= offset < b.next)
        if high_watermark is not None and live[first].base >= high_watermark:
            assert got == []
            return
        expected = live[first : first + len(got)]
        assert [(h.base_offset, h.next_offset) for h in got] == [(b.base, b.next) for b in expected]
        assert len(got) >= 1
        assert len(result.data) <= max(max_bytes, expected[0].size)
        following = live[first + len(got) : first + len(got) + 1]
        starts_file = bool(following) and following[0].base in self.log._bases
        if (
            following
            and not starts_file
            and (high_watermark is None or following[0].base < high_watermark)
        ):
            # One read serves one file; within it, the next batch is left out only
            # because it would not fit.
            assert len(result.data) + following[0].size > max_bytes
        if high_watermark is not None:
            assert all(h.base_offset < high_watermark for h in got)
        assert result.next_offset == expected[-1].next
        _, records = decode_records(bytes(result.data)[: expected[0].size])
        assert records[0].value.startswith(b"%d:0:" % expected[0].tag)

    @rule(offset=st.integers(-3, 3))
    def read_out_of_range(self, offset: int) -> None:
        target = self.start - 1 - abs(offset) if offset < 0 else self.end + 1 + offset
        if target < self.start or target > self.end:
            try:
                self.log.read(target, 100)
            except OffsetOutOfRangeError:
                return
            raise AssertionError(f"read at {target} outside [{self.start}, {self.end}] succeeded")

    @rule()
    def seal_and_begin(self) -> None:
        self.log.seal_segment()
        self.epoch += 1
        self.log.begin_segment(self.epoch)
        self.sealed_end = self.end

    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        target = data.draw(st.integers(self.start, self.end))
        self.start = self.log.delete_records(target)
        assert self.start == target

    @rule(limit=st.integers(0, 4000))
    def retention_by_bytes(self, limit: int) -> None:
        self.log.close()
        config = small_config(segment_bytes=1024, index_interval_bytes=128, retention_bytes=limit)
        self.log = PartitionLog.open(self.directory, config)
        self.log.apply_retention(now_ms=0)
        new_start = self.log.log_start_offset
        assert new_start >= self.start
        assert new_start in (self.start, self.end) or any(b.base == new_start for b in self.batches)
        self.start = new_start

    @precondition(lambda self: self.end > self.sealed_end)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        target = data.draw(st.integers(max(self.sealed_end, self.start), self.end))
        new_end = self.log.truncate_to(target)
        while self.batches and self.batches[-1].next > target:
            if (
                self.batches[-1].base < target <= self.batches[-1].next - 1
                or self.batches[-1].base >= target
            ):
                self.batches.pop()
            else:
                break
        assert new_end == self.end
        self.start = min(self.start, new_end)

    @rule(crash=st.booleans())
    def reopen(self, crash: bool) -> None:
        if crash:
            self.log.flush()
            self.log._close_files()
        else:
            self.log.close()
        self.log = PartitionLog.open(self.directory, self.config)
        assert self.log.recovery.truncated_bytes == 0

    @invariant()
    def nothing_was_cut_or_rebuilt(self) -> None:
        assert not self.warnings.messages

    @invariant()
    def offsets_match_the_model(self) -> None:
        assert self.log.log_end_offset == self.end
        assert self.log.log_start_offset == self.start


LogModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("WALRUS_LOG_MODEL_EXAMPLES", "30")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_log_against_model = LogModel.TestCase
