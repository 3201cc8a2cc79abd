"""Produce/consume throughput and end-to-end latency: Walrus against librdkafka's mock.

The peer is librdkafka's in-memory mock cluster (C, no disk, no consensus), reached
through the confluent-kafka wheel: the ceiling of the client-broker pipeline on this
machine. Both brokers are driven by the same client (confluent-kafka) in the same run,
so the ratios compare brokers, not clients.

    .venv/bin/python bench/broker_bench.py [--quick] [--walrus HOST:PORT]

Without --walrus a Walrus broker process is started on a free port with a temporary
data directory. The last line is
`RESULT broker produce_ratio=<walrus/mock, 1 KiB acks=1> consume_ratio=<...> p99_ratio=<walrus/mock>`.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import struct
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import confluent_kafka

from compat_tests.harness import BrokerProcess


class MockCluster:
    """Keeps a client alive whose mock cluster other clients can connect to."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: self._lines.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger(f"mock-{uuid.uuid4()}")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        self._client = confluent_kafka.Producer(
            {"test.mock.num.brokers": 1, "debug": "mock", "logger": logger}
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self._client.poll(0.05)
            for line in self._lines:
                m = re.search(r"bootstrap\.servers=(127\.0\.0\.1:\d+)", line)
                if m:
                    self.bootstrap = m.group(1)
                    return
        raise RuntimeError("librdkafka's mock cluster did not report its address")


@dataclass(slots=True)
class Throughput:
    messages: int
    seconds: float
    size: int

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.messages * self.size / self.seconds / 1e6


def create_topic(bootstrap: str, topic: str) -> None:
    """Create a one-partition topic the way most applications do: by producing to it
    (automatic topic creation, which both brokers allow)."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, b"marker", partition=0)
    if producer.flush(30):
        raise RuntimeError(f"could not create {topic} on {bootstrap}")


def produce(bootstrap: str, topic: str, count: int, size: int, acks: str,
            client: dict[str, object] | None = None) -> Throughput:
    """`client`: more settings (security.protocol, sasl.*, ssl.*)."""
    producer = confluent_kafka.Producer(
        {
            **(client or {}),
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 21,
            "enable.idempotence": False,
        }
    )
    payload = b"x" * size
    failures = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    start = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, payload, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.001)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    if remaining or failures:
        raise RuntimeError(f"produce to {bootstrap} failed: {remaining} unsent, {failures[:3]}")
    return Throughput(count, elapsed, size)


# librdkafka's mock keeps only about 5 MB per partition, so consumers re-read the last
# WINDOW_BYTES of the log several times rather than reading one long log once.
WINDOW_BYTES = 4 << 20


def consume(bootstrap: str, topic: str, total: int, size: int) -> Throughput:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 50 << 20,
            "max.partition.fetch.bytes": 10 << 20,
            # At the end of each pass the consumer's next fetch waits for data that
            # will not come; keep that wait short so passes follow each other quickly.
            "fetch.wait.max.ms": 10,
        }
    )
    low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), 10)
    first = max(low, high - WINDOW_BYTES // size)
    window = high - first
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, first)])
    seen = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 120
    while seen < total and time.monotonic() < deadline:
        in_pass = 0
        while in_pass < window and time.monotonic() < deadline:
            # consume() waits for all num_messages (or the timeout): never ask for more
            # than the pass still holds.
            wanted = min(10_000, window - in_pass)
            for msg in consumer.consume(num_messages=wanted, timeout=1.0):
                if msg.error() is None:
                    in_pass += 1
        seen += in_pass
        consumer.seek(confluent_kafka.TopicPartition(topic, 0, first))
    elapsed = time.perf_counter() - start
    consumer.close()
    if seen < total:
        raise RuntimeError(f"consumed {seen} of {total} from {bootstrap}")
    return Throughput(seen, elapsed, size)


def latency(bootstrap: str, topic: str, rate: int, seconds: float) -> tuple[float, float]:
    """Send timestamped records at a fixed rate; a consumer in the same process
    measures receive time minus send time. Returns (p50 ms, p99 ms)."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0, "enable.idempotence": False}
    )
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lat-{uuid.uuid4()}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "fetch.min.bytes": 1,
        }
    )
    _, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), 10)
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, high)])
    samples: list[float] = []
    total = int(rate * seconds)
    interval = 1.0 / rate
    start = time.perf_counter()
    sent = 0
    while sent < total or len(samples) < sent:
        now = time.perf_counter()
        if sent < total and now >= start + sent * interval:
            producer.produce(
                topic, struct.pack(">d", time.perf_counter()) + b"y" * 100, partition=0
            )
            sent += 1
        producer.poll(0)
        for msg in consumer.consume(num_messages=1000, timeout=0.0005):
            if msg.error() is None and msg.value() and len(msg.value()) >= 8:
                samples.append(
                    (time.perf_counter() - struct.unpack(">d", msg.value()[:8])[0]) * 1000
                )
        if time.perf_counter() - start > seconds + 30:
            break
    producer.flush(10)
    consumer.close()
    if len(samples) < total * 0.99:
        raise RuntimeError(f"latency run on {bootstrap}: received {len(samples)} of {total}")
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def run_suite(bootstrap: str, quick: bool) -> dict[str, float]:
    results: dict[str, float] = {}
    scale = 1 if quick else 5
    cases = [
        (1024, "1", 50_000 * scale),
        (1024, "all", 50_000 * scale),
        (100, "1", 100_000 * scale),
        (100, "all", 100_000 * scale),
    ]
    for size, acks, count in cases:
        topic = f"bench-{size}-{acks}-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, topic)
        p = produce(bootstrap, topic, count, size, acks)
        c = consume(bootstrap, topic, count, size)
        key = f"{size}B acks={acks}"
        results[f"produce {key} msgs/s"] = p.msgs_per_s
        results[f"produce {key} MB/s"] = p.mb_per_s
        results[f"consume {key} msgs/s"] = c.msgs_per_s
        results[f"consume {key} MB/s"] = c.mb_per_s
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    p50, p99 = latency(bootstrap, topic, rate=500 if quick else 1000, seconds=3 if quick else 10)
    results["latency p50 ms"] = p50
    results["latency p99 ms"] = p99
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument(
        "--walrus", help="bootstrap of a running Walrus broker (default: start one)"
    )
    args = parser.parse_args()

    mock = MockCluster()
    broker = None
    walrus = args.walrus
    if walrus is None:
        data = Path(tempfile.mkdtemp(prefix="walrus-bench-")) / "data"
        broker = BrokerProcess(data, extra_args=["--log-level", "WARNING"]).start()
        walrus = broker.bootstrap
    try:
        peer = run_suite(mock.bootstrap, args.quick)
        ours = run_suite(walrus, args.quick)
    finally:
        if broker is not None:
            broker.stop()

    print(f"{'measure':34} {'walrus':>12} {'mock':>12} {'ratio':>7}")
    for key in peer:
        ratio = ours[key] / peer[key] if peer[key] else float("nan")
        print(f"{key:34} {ours[key]:12.1f} {peer[key]:12.1f} {ratio:7.2f}")
    produce_ratio = ours["produce 1024B acks=1 msgs/s"] / peer["produce 1024B acks=1 msgs/s"]
    consume_ratio = ours["consume 1024B acks=1 msgs/s"] / peer["consume 1024B acks=1 msgs/s"]
    p99_ratio = ours["latency p99 ms"] / peer["latency p99 ms"]
    print(
        f"RESULT broker produce_ratio={produce_ratio:.2f} consume_ratio={consume_ratio:.2f} "
        f"p99_ratio={p99_ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
