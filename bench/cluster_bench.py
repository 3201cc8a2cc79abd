"""A three-node Walrus cluster against one node: produce and consume throughput, and
how long writes stop when a node is killed.

    .venv/bin/python bench/cluster_bench.py [--quick]

Throughput. The same client (confluent-kafka), record size (1 KiB, incompressible),
topic shape (6 partitions) and settings (acks=all, idempotent, linger.ms=5) against a
one-node broker and a three-node cluster in the same run. Both are up, idle while the
other is measured, and take turns (3 rounds with --quick, 5 in full; medians), so
drift in the machine's load falls on both alike. Clients bootstrap from one node and
reach the others through Metadata; a consume clock starts once the consumer holds the
bootstrap metadata. The consumer's fetch.queue.backoff.ms is 10: with its default
(1 s) librdkafka stops fetching for a whole second each time its local queue fills,
which prefetching from three brokers does often, and the runs measured those pauses
instead of the brokers. The one-node figure is the ceiling the cluster is compared
with: on a machine with fewer cores than nodes the three brokers share CPUs, so a
ratio below 1 here says what the cluster costs, not how it scales.

Failover. The topics here have one replica per partition (replication_factor=1): a
segment's records live only on the node that led it, so no other node can take over a
partition whose leader died. "Writes resuming" therefore means: a steady idempotent acks=all producer (2,000 records/s
round-robin over the 6 partitions) is running; node N (leading two of the
partitions; a Raft follower, then the Raft leader) gets SIGKILL at t0 and is
restarted at once; the clock stops, per partition, at the first acknowledgement of a
record handed to the client after t0. `failover_s` is the largest of those over all
partitions, i.e. the time until every partition accepts writes again (process start,
Raft catch-up, lease renewal and the client's reconnect backoff included; the
client's reconnect.backoff.max.ms is 1000). `live_resume_s` is the same clock over
the partitions led by the surviving nodes only, and `live_stall_s` the longest time
one of those went without an acknowledgement after t0: how little the survivors
notice. `restart_s` is t0 to the restarted node listening again. --quick kills a
follower once and the Raft leader once; the full run three times each.

The last line is `RESULT cluster produce_ratio_3v1=<3-node/1-node records/s>
failover_s=<median over every kill>`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import confluent_kafka

from compat_tests.cluster import Cluster
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

PARTITIONS = 6
RECORD_BYTES = 1024
FAILOVER_RATE = 2000.0
CLIENT_QUIET = {"log_level": 0}


@dataclass(slots=True)
class Throughput:
    produce_rps: float
    consume_rps: float

    @property
    def produce_mib_s(self) -> float:
        return self.produce_rps * RECORD_BYTES / 2**20

    @property
    def consume_mib_s(self) -> float:
        return self.consume_rps * RECORD_BYTES / 2**20


@dataclass(slots=True)
class Failover:
    victim: int
    restart_s: float
    live_resume_s: float
    live_stall_s: float
    failover_s: float


def create_topic(bootstrap: str, topic: str) -> dict[int, int]:
    with RawClient(bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [
            {"name": topic, "num_partitions": PARTITIONS, "replication_factor": 1}], "timeout_ms": 10000})
        if created.topics[0].error_code != 0:
            raise RuntimeError(f"creating {topic}: {created}")
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    return {p.partition_index: p.leader_id for p in md.topics[0].partitions}


def produce_throughput(bootstrap: str, topic: str, count: int) -> float:
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, **CLIENT_QUIET,
    })
    failures: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    payload = os.urandom(RECORD_BYTES)
    started = time.perf_counter()
    sent = 0
    while sent < count:
        try:
            producer.produce(topic, value=payload, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.005)
        if sent % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0 or failures:
        raise RuntimeError(f"produce did not complete: {failures[:3]}")
    return count / (time.perf_counter() - started)


def consume_throughput(bootstrap: str, topic: str, count: int) -> float:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
        "enable.auto.commit": False,
        # When its local queue is full, librdkafka stops fetching for this long (1 s by
        # default); prefetching from three brokers fills it often, and the pauses
        # would measure the client's queue, not the brokers.
        "fetch.queue.backoff.ms": 10, **CLIENT_QUIET,
    })
    # Connected and holding metadata before the clock starts: the bootstrap handshake
    # would otherwise weigh on a read that takes about a second.
    consumer.list_topics(topic, timeout=10)
    started = time.perf_counter()
    consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = 0
    deadline = time.monotonic() + 120
    while got < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10000, timeout=0.5):
            if msg.error() is None:
                got += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    if got < count:
        raise RuntimeError(f"consumed {got} of {count}")
    return count / elapsed


def throughput(bootstrap: str, count: int) -> Throughput:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap.split(",")[0], topic)
    produce_rps = produce_throughput(bootstrap, topic, count)
    return Throughput(produce_rps, consume_throughput(bootstrap, topic, count))


class SteadyProducer(threading.Thread):
    """Idempotent acks=all writes at a fixed rate, round-robin over the partitions;
    keeps (partition, handed-over time, acknowledged time) of each record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.acks: list[tuple[int, float, float]] = []
        self.failures: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 1000, **CLIENT_QUIET,
        })

    def run(self) -> None:
        interval = 1 / FAILOVER_RATE
        next_at = time.monotonic()
        n = 0
        while not self._halt.is_set():
            handed = time.monotonic()

            def on_delivery(err: object, msg: confluent_kafka.Message, handed: float = handed) -> None:
                with self._lock:
                    if err is None:
                        self.acks.append((msg.partition(), handed, time.monotonic()))
                    else:
                        self.failures.append(str(err))

            try:
                self.producer.produce(self.topic, value=b"x" * 100, partition=n % PARTITIONS,
                                      on_delivery=on_delivery)
            except BufferError:
                self.producer.poll(0.01)
                continue
            n += 1
            next_at += interval
            self.producer.poll(max(0.0, next_at - time.monotonic()))

    def first_acks_after(self, t0: float) -> dict[int, float]:
        """Per partition, when the first record handed over after t0 was acknowledged."""
        first: dict[int, float] = {}
        with self._lock:
            for partition, handed, acked in self.acks:
                if handed > t0 and acked < first.get(partition, float("inf")):
                    first[partition] = acked
        return first

    def longest_gap(self, partitions: set[int], start: float, end: float) -> float:
        """The longest time one of `partitions` went without an acknowledgement
        within [start, end]."""
        with self._lock:
            acks = list(self.acks)
        longest = 0.0
        for partition in partitions:
            times = sorted(acked for p, _, acked in acks if p == partition and start <= acked <= end)
            marks = [start, *times, end]
            longest = max(longest, *(b - a for a, b in itertools.pairwise(marks)))
        return longest

    def finish(self) -> None:
        self._halt.set()
        self.join(5)
        self.producer.flush(60)


def failover(cluster: Cluster, victim: int) -> Failover:
    bootstrap = cluster.nodes[next(n for n in cluster.nodes if n != victim)].bootstrap
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    leaders = create_topic(bootstrap, topic)
    live_led = {p for p, leader in leaders.items() if leader != victim}
    load = SteadyProducer(bootstrap, topic)
    load.start()
    try:
        time.sleep(2)
        t0 = time.monotonic()
        cluster.nodes[victim].kill()
        cluster.nodes[victim].start(timeout=60)
        restart_s = time.monotonic() - t0
        deadline = t0 + 90
        while len(load.first_acks_after(t0)) < PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"partitions still not writable 90s after the kill: {load.first_acks_after(t0)}")
            time.sleep(0.02)
        first = load.first_acks_after(t0)
        end = max(first.values())
    finally:
        load.finish()
    if load.failures:
        raise RuntimeError(f"{len(load.failures)} records failed during the failover: {load.failures[:3]}")
    return Failover(
        victim,
        restart_s,
        max(first[p] for p in live_led) - t0,
        load.longest_gap(live_led, t0, end),
        end - t0,
    )


def compare_throughput(single: BrokerProcess, cluster: Cluster, count: int, rounds: int
                       ) -> tuple[Throughput, Throughput]:
    """Medians for one node and for three. Both stay up, idle while the other is
    measured, and take turns: drift in the machine's load then falls on both alike."""
    ones, threes = [], []
    for _ in range(rounds):
        ones.append(throughput(single.bootstrap, count))
        threes.append(throughput(cluster.nodes[1].bootstrap, count))
    medians = []
    for label, found in (("1 node ", ones), ("3 nodes", threes)):
        t = Throughput(statistics.median(r.produce_rps for r in found),
                       statistics.median(r.consume_rps for r in found))
        medians.append(t)
        print(f"{label}: produce " + " ".join(f"{r.produce_rps:,.0f}" for r in found)
              + " rec/s; consume " + " ".join(f"{r.consume_rps:,.0f}" for r in found) + " rec/s")
        print(f"{label} medians: produce {t.produce_rps:9,.0f} rec/s {t.produce_mib_s:6.1f} MiB/s   "
              f"consume {t.consume_rps:9,.0f} rec/s {t.consume_mib_s:6.1f} MiB/s")
    return medians[0], medians[1]


def kill_trials(cluster: Cluster, trials: int) -> dict[str, list[Failover]]:
    runs: dict[str, list[Failover]] = {"follower": [], "raft leader": []}
    for trial in range(trials):
        for role, found in runs.items():
            controller = cluster.controller_id()
            followers = [n for n in cluster.nodes if n != controller]
            victim = followers[trial % len(followers)] if role == "follower" else controller
            result = failover(cluster, victim)
            found.append(result)
            print(f"kill -9 of node {victim} ({role}): listening again after {result.restart_s:.2f}s, "
                  f"live-led partitions resumed {result.live_resume_s:.3f}s "
                  f"(longest pause {result.live_stall_s:.3f}s), every partition {result.failover_s:.2f}s")
            cluster.wait_for_brokers(3)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    args = parser.parse_args()
    count = 150_000 if args.quick else 300_000
    with tempfile.TemporaryDirectory(prefix="walrus-cluster-bench-") as tmp, \
            Cluster(Path(tmp) / "cluster", 3) as cluster:
        cluster.wait_for_brokers(3)
        single = BrokerProcess(Path(tmp) / "single").start()
        try:
            one, three = compare_throughput(single, cluster, count, rounds=3 if args.quick else 5)
        finally:
            single.stop()
        runs = kill_trials(cluster, trials=1 if args.quick else 3)
    produce_ratio = three.produce_rps / one.produce_rps
    consume_ratio = three.consume_rps / one.consume_rps
    failover_s = statistics.median(r.failover_s for found in runs.values() for r in found)
    print(f"ratios 3 nodes / 1 node: produce {produce_ratio:.2f} consume {consume_ratio:.2f}")
    for role, found in runs.items():
        print(f"kill -9 of a {role}, medians of {len(found)}: every partition writable "
              f"{statistics.median(r.failover_s for r in found):.2f}s, restart "
              f"{statistics.median(r.restart_s for r in found):.2f}s, live-led longest pause "
              f"{statistics.median(r.live_stall_s for r in found):.3f}s")
    print(f"RESULT cluster produce_ratio_3v1={produce_ratio:.2f} failover_s={failover_s:.2f}")


if __name__ == "__main__":
    main()
