"""The workload the cluster fault tests run, and the checker that judges it.

Idempotent acks=all producers (confluent-kafka) write unique values to every partition
of a topic while a consumer group reads it; each acknowledgement is recorded with the
partition and offset the broker gave. After the faults, the whole log is read back and
`check` counts what a user would call data loss: acknowledged records missing,
records stored twice, an offset holding a record other than the one acknowledged for
it, or one producer's records out of order within a partition.

The unit tests at the bottom feed the checker hand-made histories, so a checker that
cannot see a loss or a duplicate fails here rather than passing every fault test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import confluent_kafka
import pytest

from compat_tests.clients import close_consumer
from compat_tests.raw_client import RawClient

pytestmark = pytest.mark.unit


@dataclass(slots=True)
class Ack:
    partition: int
    # None: librdkafka acknowledged the record without learning its offset (an in-doubt
    # record counted as written because a later one of the same producer was).
    offset: int | None
    value: bytes
    at: float


@dataclass(slots=True)
class Stored:
    partition: int
    offset: int
    value: bytes


@dataclass(slots=True)
class Verdict:
    acknowledged: int
    stored: int
    lost: list[bytes] = field(default_factory=list)
    duplicated: list[bytes] = field(default_factory=list)
    conflicting_offsets: list[tuple[int, int]] = field(default_factory=list)
    out_of_order: list[tuple[int, bytes]] = field(default_factory=list)
    offset_gaps: list[tuple[int, int]] = field(default_factory=list)
    # What was wrong with each acknowledgement that did not match the log, in words.
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.conflicting_offsets
                    or self.out_of_order or self.offset_gaps)

    def summary(self) -> str:
        return (f"acknowledged={self.acknowledged} stored={self.stored} lost={len(self.lost)} "
                f"duplicated={len(self.duplicated)} conflicting_offsets={len(self.conflicting_offsets)} "
                f"out_of_order={len(self.out_of_order)} offset_gaps={len(self.offset_gaps)}")


def _writer_and_sequence(value: bytes) -> tuple[str, int]:
    writer, _, seq = value.decode().rpartition("-")
    return writer, int(seq)


def check(acks: list[Ack], stored: list[Stored], *, high_watermarks: dict[int, int]) -> Verdict:
    """Judge a run: `stored` is every record read back from offset 0 to each partition's
    high watermark. Values are "<writer>-<sequence>", unique per write."""
    verdict = Verdict(len(acks), len(stored))
    by_value = Counter(s.value for s in stored)
    verdict.duplicated = sorted(v for v, n in by_value.items() if n > 1)
    at_offset: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    for s in stored:
        at_offset[(s.partition, s.offset)].append(s.value)
    verdict.conflicting_offsets = sorted(k for k, vs in at_offset.items() if len(set(vs)) > 1)
    where = {s.value: (s.partition, s.offset) for s in stored}
    for ack in acks:
        if ack.value not in where:
            verdict.lost.append(ack.value)
            verdict.details.append(f"{ack.value!r} acknowledged at {ack.partition}/{ack.offset}, not in the log")
        elif ack.offset is None:
            # Acknowledged implicitly, with no offset to compare: being stored (once, which
            # the duplicate check covers) is all that can be asked.
            continue
        elif at_offset.get((ack.partition, ack.offset)) != [ack.value]:
            # The value is somewhere, but not at the offset its producer was told.
            verdict.conflicting_offsets.append((ack.partition, ack.offset))
            verdict.details.append(
                f"{ack.value!r} acknowledged at {ack.partition}/{ack.offset}, stored at "
                f"{where[ack.value][0]}/{where[ack.value][1]}; that offset holds "
                f"{at_offset.get((ack.partition, ack.offset))}")
    for partition, high in high_watermarks.items():
        offsets = sorted(o for (p, o) in at_offset if p == partition)
        # Every offset below the high watermark is handed out exactly once: a gap is
        # an offset the log skipped or lost after acknowledging what followed it.
        missing = set(range(offsets[0] if offsets else 0, high)) - set(offsets)
        verdict.offset_gaps.extend((partition, o) for o in sorted(missing))
    last_seq: dict[tuple[int, str], int] = {}
    for s in sorted(stored, key=lambda s: (s.partition, s.offset)):
        writer, seq = _writer_and_sequence(s.value)
        previous = last_seq.get((s.partition, writer))
        if previous is not None and seq <= previous:
            verdict.out_of_order.append((s.partition, s.value))
        last_seq[(s.partition, writer)] = seq
    return verdict


class ProducerLoad(threading.Thread):
    """One idempotent producer writing "<name>-<n>" round-robin over the partitions at
    about `rate` records a second, recording every acknowledgement."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, name: str, rate: float = 150.0) -> None:
        super().__init__(name=f"producer-{name}", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.writer = name
        self.rate = rate
        self.acks: list[Ack] = []
        self.failures: list[str] = []
        self.sent = 0
        self.unflushed = -1
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Long enough to outlast a node's restart: a record to a partition whose
            # leader is down waits for it instead of failing.
            "message.timeout.ms": 45000,
            "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 100,
            # Refused connections to a killed node are expected here, not news.
            "log_level": 0,
            "error_cb": self._on_error,
        })

    def _on_error(self, err: confluent_kafka.KafkaError) -> None:
        if err.fatal():
            with self._lock:
                self.failures.append(f"fatal: {err}")

    def _on_delivery(self, err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        now = time.monotonic()
        with self._lock:
            if err is not None:
                kind = "fatal" if err.fatal() else "failed"
                self.failures.append(f"{kind}: {msg.value()!r}: {err}")
            else:
                self.acks.append(Ack(msg.partition(), msg.offset(), msg.value(), now))

    def run(self) -> None:
        try:
            self._produce_until_stopped()
        except confluent_kafka.KafkaException as exc:
            # A fatal error (the broker broke the idempotence contract): this producer
            # can do nothing more; the test reports it.
            with self._lock:
                self.failures.append(f"fatal: {exc}")

    def _produce_until_stopped(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._halt.is_set():
            value = f"{self.writer}-{self.sent}".encode()
            try:
                self.producer.produce(self.topic, value=value, partition=self.sent % self.partitions,
                                      on_delivery=self._on_delivery)
            except BufferError:
                self.producer.poll(0.1)
                continue
            self.sent += 1
            next_at += interval
            self.producer.poll(max(0.0, next_at - time.monotonic()))

    def finish(self, timeout: float) -> None:
        """Stop producing and wait up to `timeout` s for every outstanding record."""
        self._halt.set()
        self.join(5)
        self.unflushed = self.producer.flush(timeout)

    def acks_after(self, since: float) -> list[Ack]:
        with self._lock:
            return [a for a in self.acks if a.at >= since]

    def fatal_error(self) -> str | None:
        with self._lock:
            fatal = [f for f in self.failures if "fatal" in f.lower()]
        return fatal[0] if fatal else None

    def wait_alive(self) -> None:
        """Fail at once, with the reason, if the producer hit a fatal error."""
        fatal = self.fatal_error()
        assert fatal is None, f"{self.writer}: {fatal}"


class GroupReader(threading.Thread):
    """A consumer in a group, committing as it goes, recording every value it is given."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        super().__init__(name=f"group-{group}", daemon=True)
        self.values: Counter[bytes] = Counter()
        self.errors: list[str] = []
        self._halt = threading.Event()
        self.consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 0,
        })
        self.consumer.subscribe([topic])

    def run(self) -> None:
        while not self._halt.is_set():
            for msg in self.consumer.consume(num_messages=500, timeout=0.2):
                if msg.error() is None:
                    self.values[msg.value()] += 1
                elif not msg.error().retriable() and msg.error().code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    self.errors.append(str(msg.error()))

    def finish(self) -> None:
        self._halt.set()
        self.join(10)
        close_consumer(self.consumer)


def _high_watermark(consumer: confluent_kafka.Consumer, topic: str, partition: int) -> int:
    """The partition's high watermark, asking again while leadership is moving:
    get_watermark_offsets does not retry NOT_LEADER_FOR_PARTITION by itself (nor flags
    it retriable)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return int(consumer.get_watermark_offsets(
                confluent_kafka.TopicPartition(topic, partition), timeout=10)[1])
        except confluent_kafka.KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class ReadBackStalled(AssertionError):
    """The read-back stopped short of a high watermark; `stalled` names the partitions
    and `positions` where their reader stands, for a caller to gather more evidence."""

    def __init__(self, message: str, stalled: list[int], positions: dict[int, int]) -> None:
        super().__init__(message)
        self.stalled = stalled
        self.positions = positions


def read_everything(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0
                    ) -> tuple[list[Stored], dict[int, int]]:
    """Every record of every partition, from offset 0 to its high watermark."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"checker-{uuid.uuid4()}",
        "enable.auto.commit": False, "enable.partition.eof": True,
    })
    try:
        highs = {p: _high_watermark(consumer, topic, p) for p in range(partitions)}
        consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[Stored] = []
        done: set[int] = {p for p, high in highs.items() if high == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                        raise AssertionError(f"reading back {topic}: {err}")
                    continue
                if msg.offset() < highs[msg.partition()]:
                    out.append(Stored(msg.partition(), msg.offset(), msg.value()))
                if msg.offset() >= highs[msg.partition()] - 1:
                    done.add(msg.partition())
        if len(done) < partitions:
            stalled = [p for p in range(partitions) if p not in done]
            positions = {p.partition: max(p.offset, 0) for p in consumer.position(
                [confluent_kafka.TopicPartition(topic, p) for p in stalled])}
            raise ReadBackStalled(f"read-back of {topic} stalled; partitions done: {sorted(done)} of {highs}; "
                                  + _stall_report(bootstrap, topic, positions), stalled, positions)
        return out, highs
    finally:
        close_consumer(consumer)


def _stall_report(bootstrap: str, topic: str, positions: dict[int, int]) -> str:
    """What a plain Fetch at each stalled partition's reader position gets from the
    node it asked and from the partition's leader: the diagnosis of a stall."""
    stalled = sorted(positions)
    lines = []
    with RawClient(bootstrap.split(",")[0]) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    where = {b.node_id: f"{b.host}:{b.port}" for b in md.brokers}
    leaders = {p.partition_index: p.leader_id for p in md.topics[0].partitions}
    for p in stalled:
        offset = positions[p]
        for name, address in (("asked", bootstrap.split(",")[0]), ("leader", where.get(leaders.get(p, -1)))):
            if address is None:
                lines.append(f"partition {p} at {offset}: no leader named")
                continue
            try:
                with RawClient(address) as raw:
                    part = raw.request("Fetch", 12, {
                        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                        "topics": [{"topic": topic, "partitions": [{
                            "partition": p, "fetch_offset": offset, "partition_max_bytes": 1 << 20,
                            "current_leader_epoch": -1}]}]}).responses[0].partitions[0]
                lines.append(f"partition {p} at {offset}, {name} {address} (leader {leaders.get(p)}): "
                             f"error {part.error_code}, high watermark {part.high_watermark}, "
                             f"{len(part.records or b'')} bytes")
            except (OSError, ConnectionError) as exc:
                lines.append(f"partition {p} at {offset}, {name} {address}: {exc}")
    return "; ".join(lines)


# --------------------------------------------------------------------- the checker's own tests


def _stored(*rows: tuple[int, int, str]) -> list[Stored]:
    return [Stored(p, o, v.encode()) for p, o, v in rows]


def test_a_clean_history_passes() -> None:
    acks = [Ack(0, 0, b"a-0", 0), Ack(0, 1, b"a-1", 0), Ack(1, 0, b"b-0", 0)]
    stored = _stored((0, 0, "a-0"), (0, 1, "a-1"), (0, 2, "b-1"), (1, 0, "b-0"))
    verdict = check(acks, stored, high_watermarks={0: 3, 1: 1})
    assert verdict.clean, verdict.summary()


def test_a_missing_acknowledged_record_is_lost() -> None:
    verdict = check([Ack(0, 0, b"a-0", 0), Ack(0, 1, b"a-1", 0)], _stored((0, 0, "a-0")),
                    high_watermarks={0: 1})
    assert verdict.lost == [b"a-1"] and not verdict.clean


def test_a_record_stored_twice_is_a_duplicate() -> None:
    verdict = check([Ack(0, 0, b"a-0", 0)], _stored((0, 0, "a-0"), (0, 1, "a-0")),
                    high_watermarks={0: 2})
    assert verdict.duplicated == [b"a-0"]


def test_an_offset_with_another_record_than_acknowledged_conflicts() -> None:
    verdict = check([Ack(0, 0, b"a-0", 0), Ack(0, 1, b"b-0", 0)],
                    _stored((0, 0, "a-0"), (0, 1, "c-0"), (0, 2, "b-0")), high_watermarks={0: 3})
    assert verdict.conflicting_offsets == [(0, 1)]


def test_an_implicit_acknowledgement_needs_the_record_stored_not_an_offset() -> None:
    stored = _stored((0, 0, "a-0"), (0, 1, "a-1"))
    verdict = check([Ack(0, None, b"a-0", 0), Ack(0, 1, b"a-1", 0)], stored, high_watermarks={0: 2})
    assert verdict.clean, verdict.summary()
    missing = check([Ack(0, None, b"a-2", 0)], stored, high_watermarks={0: 2})
    assert missing.lost == [b"a-2"]


def test_two_records_at_one_offset_conflict() -> None:
    verdict = check([], _stored((0, 0, "a-0"), (0, 0, "b-0")), high_watermarks={0: 1})
    assert verdict.conflicting_offsets == [(0, 0)]


def test_a_writers_records_out_of_offset_order_are_reported() -> None:
    verdict = check([], _stored((0, 0, "a-1"), (0, 1, "a-0")), high_watermarks={0: 2})
    assert verdict.out_of_order == [(0, b"a-0")]


def test_a_hole_below_the_high_watermark_is_a_gap() -> None:
    verdict = check([], _stored((0, 0, "a-0"), (0, 2, "a-1")), high_watermarks={0: 3})
    assert verdict.offset_gaps == [(0, 1)]
