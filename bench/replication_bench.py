"""What replication costs and how fast a replicated partition fails over, on a
three-node cluster.

    .venv/bin/python bench/replication_bench.py [--quick]

Throughput. One client (confluent-kafka, not idempotent in either case so only acks
and replicas differ), 1 KiB incompressible records, linger.ms=5, 6 partitions, all
in the same run on the same cluster: acks=all to a topic with three replicas
(min.insync.replicas=2), against acks=1 to a topic with one replica, which is the
ceiling (the leader appends and answers; nobody else is waited for). The two take
turns (2 rounds with --quick, 5 in full; medians), so drift in the machine's load
falls on both. `acks_all_ratio` is acks=all RF=3 records/s over acks=1 RF=1 records/s.

Failover. A steady idempotent acks=all producer writes 500 records/s to one partition
of a topic with three replicas (min.insync.replicas=2). The node leading that
partition gets SIGKILL at t0 and stays down; the clock stops at the first
acknowledgement of a record handed to the client after t0. With the default timings
(node leases: docs/operations.md, "Timing settings") that time is the dead leader's
node lease running out (1 s after its last heartbeat, sent every 0.25 s), a failover
check (every 0.1 s) and a Raft round; with --no-node-leases it is the broker session
timeout (9 s after the dead leader's last heartbeat, sent every 3 s), a check every 0.5 s
and the Raft round. Either way that is the moment the metadata names the new leader,
printed per kill; then comes the client's next metadata refresh (librdkafka looks
again at partitions without a reachable leader once a second) and its retry. The
killed node is restarted; segments roll every 1,000 records, so the next segment
placed gives it a replica again, and the next trial waits until the partition has
three in-sync replicas. 2 kills with --quick, 5 in full; median and maximum. A kill of
the Raft leader adds its election (about 1 s) to the failover.

Afterwards every acknowledged record of the failover topic is read back: `lost` counts
acknowledged records missing, `duplicated` records stored more than once.

The last line is `RESULT replication acks_all_ratio=<...> failover_p50_s=<...>
lost=<n> duplicated=<n>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import confluent_kafka

from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_faults_workload import Ack, check, read_everything

PARTITIONS = 6
RECORD_BYTES = 1024
FAILOVER_RATE = 500.0
ROLL_EVERY = 1000
QUIET = {"log_level": 0}
# --no-node-leases: the timings before node leases became the default.
SESSION_TIMINGS = {
    "WALRUS_NODE_LEASES": "false", "WALRUS_LEASE_MS": "6000", "WALRUS_LEASE_RENEW_INTERVAL_MS": "2000",
    "WALRUS_LEASE_SAFETY_MARGIN_MS": "500", "WALRUS_FAILOVER_CHECK_INTERVAL_MS": "500",
}


def create_topic(bootstrap: str, topic: str, partitions: int, replicas: int, min_in_sync: int,
                 **configs: str) -> None:
    entries = [{"name": "min.insync.replicas", "value": str(min_in_sync)}]
    entries += [{"name": k.replace("_", "."), "value": v} for k, v in configs.items()]
    with RawClient(bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [{
            "name": topic, "num_partitions": partitions, "replication_factor": replicas,
            "configs": entries}], "timeout_ms": 10000})
    if created.topics[0].error_code != 0:
        raise RuntimeError(f"creating {topic}: {created}")


def partition_state(bootstrap: str, topic: str, partition: int) -> tuple[int, list[int]]:
    """(leader, in-sync replicas) of one partition as `bootstrap` sees it."""
    with RawClient(bootstrap) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    p = next(p for p in md.topics[0].partitions if p.partition_index == partition)
    return int(p.leader_id), sorted(p.isr_nodes)


def wait_in_sync(bootstrap: str, topic: str, partitions: int, replicas: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while any(len(partition_state(bootstrap, topic, p)[1]) < replicas for p in range(partitions)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic}: replicas not all in sync within {timeout}s")
        time.sleep(0.2)


def produce_rate(bootstrap: str, topic: str, acks: str, count: int) -> float:
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False,
        "linger.ms": 5, **QUIET,
    })
    failures: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    # Connected and holding metadata before the clock starts.
    producer.list_topics(topic, timeout=10)
    payload = os.urandom(RECORD_BYTES)
    started = time.perf_counter()
    sent = 0
    while sent < count:
        try:
            producer.produce(topic, value=payload, partition=sent % PARTITIONS, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.005)
        if sent % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0 or failures:
        raise RuntimeError(f"produce did not complete: {failures[:3]}")
    return count / (time.perf_counter() - started)


def compare_acks(cluster: Cluster, count: int, rounds: int) -> tuple[float, float]:
    """Median records/s of acks=all at RF=3 and of acks=1 at RF=1, taking turns."""
    bootstrap = cluster.nodes[1].bootstrap
    replicated, single = f"rf3-{uuid.uuid4().hex[:8]}", f"rf1-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, replicated, PARTITIONS, 3, 2)
    create_topic(bootstrap, single, PARTITIONS, 1, 1)
    wait_in_sync(bootstrap, replicated, PARTITIONS, 3)
    alls, ones = [], []
    for _ in range(rounds):
        alls.append(produce_rate(bootstrap, replicated, "all", count))
        ones.append(produce_rate(bootstrap, single, "1", count))
    for label, found in (("acks=all RF=3", alls), ("acks=1   RF=1", ones)):
        median = statistics.median(found)
        print(f"{label}: " + " ".join(f"{r:,.0f}" for r in found)
              + f" rec/s; median {median:,.0f} rec/s {median * RECORD_BYTES / 2**20:.1f} MiB/s")
    return statistics.median(alls), statistics.median(ones)


class SteadyProducer(threading.Thread):
    """Idempotent acks=all writes of unique values to one partition at a fixed rate;
    keeps each acknowledgement with the time its record was handed to the client."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.acks: list[tuple[Ack, float]] = []
        self.failures: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 2, "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 1000, "retry.backoff.ms": 100, **QUIET,
        })

    def run(self) -> None:
        interval = 1 / FAILOVER_RATE
        next_at = time.monotonic()
        n = 0
        while not self._halt.is_set():
            handed = time.monotonic()

            def on_delivery(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message,
                            handed: float = handed) -> None:
                partition, offset, value = msg.partition(), msg.offset(), msg.value()
                with self._lock:
                    if err is None and partition is not None and offset is not None and value is not None:
                        self.acks.append((Ack(partition, offset, value, time.monotonic()), handed))
                    else:
                        self.failures.append(str(err or f"acknowledged without an offset: {msg}"))

            try:
                self.producer.produce(self.topic, value=f"steady-{n}".encode(), partition=0,
                                      on_delivery=on_delivery)
            except BufferError:
                self.producer.poll(0.01)
                continue
            n += 1
            next_at += interval
            self.producer.poll(max(0.0, next_at - time.monotonic()))

    def first_ack_after(self, t0: float) -> float | None:
        with self._lock:
            return min((a.at for a, handed in self.acks if handed > t0), default=None)

    def finish(self) -> list[Ack]:
        self._halt.set()
        self.join(5)
        unflushed = self.producer.flush(120)
        if unflushed:
            raise RuntimeError(f"{unflushed} records never answered")
        return [a for a, _ in self.acks]


def failovers(cluster: Cluster, kills: int, raft_leaders: bool = False) -> tuple[list[float], int, int]:
    """Seconds from kill -9 of the partition's leader to its first acknowledged write,
    per kill; then (lost, duplicated) over everything the producer was told was written.
    `raft_leaders`: kill only when the partition's leader also leads the metadata Raft
    (the slowest case: an election comes first), waiting for rolls to make it so."""
    bootstrap = cluster.nodes[1].bootstrap
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    # A returning node gets replicas again only when a segment is placed: rolls every
    # few seconds put it back in the in-sync set before the next kill.
    create_topic(bootstrap, topic, 1, 3, 2, segment_entries=str(ROLL_EVERY))
    wait_in_sync(bootstrap, topic, 1, 3)
    load = SteadyProducer(cluster.bootstrap, topic)
    load.start()
    times: list[float] = []
    try:
        for _ in range(kills):
            time.sleep(1.5)
            leader, _ = partition_state(bootstrap, topic, 0)
            deadline = time.monotonic() + 30
            while raft_leaders and time.monotonic() < deadline:
                if leader == cluster.controller_id(next(n for n in cluster.nodes if n != leader)):
                    break
                time.sleep(0.2)
                leader, _ = partition_state(bootstrap, topic, 0)
            raft_leader = cluster.controller_id(next(n for n in cluster.nodes if n != leader))
            watcher = cluster.nodes[next(n for n in cluster.nodes if n != leader)].bootstrap
            t0 = time.monotonic()
            cluster.nodes[leader].kill()
            # When the metadata names another leader: the broker's part of the failover;
            # the rest, up to the first acknowledgement, is the client finding it.
            moved: float | None = None
            while (first := load.first_ack_after(t0)) is None:
                if time.monotonic() > t0 + 90:
                    raise RuntimeError(f"no write acknowledged 90s after killing node {leader}: {load.failures[:3]}")
                if moved is None and partition_state(watcher, topic, 0)[0] not in (leader, -1):
                    moved = time.monotonic()
                time.sleep(0.02)
            times.append(first - t0)
            now_leader, _ = partition_state(watcher, topic, 0)
            moved_s = f"{moved - t0:.2f}s" if moved is not None else "after it"
            role = "leader, also of Raft" if raft_leader == leader else "leader"
            print(f"kill -9 of node {leader} ({role}): first acknowledged write {first - t0:.2f}s later, "
                  f"node {now_leader} leads (named in the metadata {moved_s})")
            cluster.nodes[leader].start(timeout=60)
            # The next trial starts with three copies again, the restarted node included.
            wait_in_sync(watcher, topic, 1, 3, timeout=30)
    finally:
        acks = load.finish()
    if load.failures:
        raise RuntimeError(f"{len(load.failures)} records failed: {load.failures[:3]}")
    stored, highs = read_everything(bootstrap, topic, 1, timeout=60)
    verdict = check(acks, stored, high_watermarks=highs)
    print(f"failover topic: {verdict.summary()}")
    duplicated = sum(n - 1 for n in Counter(s.value for s in stored).values() if n > 1)
    return times, len(verdict.lost), duplicated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--raft-leader-kills", action="store_true",
                        help="kill a partition leader only when it also leads Raft")
    parser.add_argument("--no-node-leases", action="store_true",
                        help=f"failover by the session timeout, as before node leases: {SESSION_TIMINGS}")
    args = parser.parse_args()
    count = 60_000 if args.quick else 200_000
    env = SESSION_TIMINGS if args.no_node_leases else None
    with tempfile.TemporaryDirectory(prefix="walrus-replication-bench-") as tmp, \
            Cluster(Path(tmp), 3, env=env) as cluster:
        cluster.wait_for_brokers(3)
        acks_all, acks_one = compare_acks(cluster, count, rounds=2 if args.quick else 5)
        times, lost, duplicated = failovers(cluster, kills=2 if args.quick else 5,
                                            raft_leaders=args.raft_leader_kills)
    ratio = acks_all / acks_one
    p50 = statistics.median(times)
    print(f"acks=all RF=3 / acks=1 RF=1: {ratio:.2f}")
    print(f"failover over {len(times)} kills: median {p50:.2f}s, max {max(times):.2f}s")
    print(f"RESULT replication acks_all_ratio={ratio:.2f} failover_p50_s={p50:.2f} "
          f"lost={lost} duplicated={duplicated}")


if __name__ == "__main__":
    main()
