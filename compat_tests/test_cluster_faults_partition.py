"""A node cut off from the rest of a three-node cluster by a network partition.

Each broker runs in a network namespace of its own (compat_tests/netns.py); the test
sets the cut-off node's link down while writers keep going on both sides: one inside
the cut-off node's namespace writing to the partitions it leads, one on the majority
side writing to the partitions the others lead.

The cut-off node can no longer renew its write leases through Raft, so within one lease
(ClusterTuning.lease_ms) of the cut it stops acknowledging writes and answers them with a retriable
error; the majority keeps writing its own partitions; when the link returns every
partition is writable again, and reading everything back finds no offset written twice
and no acknowledged record missing.

Right after healing, while the returning node's metadata is still behind, a client
that knows only that node gets the registered brokers from it (not an empty cluster)
and writes every partition within seconds, without waiting for the node to catch up.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from broker.cluster_tuning import ClusterTuning
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch
from compat_tests.netns import (
    NamespacedCluster,
    NamespaceThread,
    NetworkLab,
    skip_or_fail_without_namespaces,
)
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_faults_workload import Ack, check, read_everything

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(150)]

PARTITIONS = 6
LEASE_S = ClusterTuning().lease_ms / 1000
# Errors a Kafka client retries on its own: what a fenced leader may answer.
RETRIABLE = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE,
             ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_ENOUGH_REPLICAS}
# Once the lease has run out, a write must be refused within the Produce request's own
# timeout (the writers send timeout_ms=15000).
REFUSAL_WITHIN_S = 16.0
RECOVERY_WITHIN_S = 30.0
# The metadata moves the cut-off node's segments within a few seconds (its node lease,
# 1 s, and a Raft election when it led Raft), but a writer's request forwarded to the
# cut-off node just before is stuck there until the forward times out (the request's
# 15 s plus a second): the writer's next attempt comes after that.
TAKEOVER_WITHIN_S = 25.0
# The metadata's part alone: the node lease, an election, two heartbeats, the failover
# check and a Raft round (1.0-3.5 s measured), with room for a loaded machine.
METADATA_MOVES_WITHIN_S = 8.0
# A healed node's Raft log takes from under a second to 7 s here to catch up. Meanwhile
# a client that bootstraps from it alone is told every registered broker and the leaders
# last known (none for the healed node's own partitions, which moved), writes at once
# where those are right and finds the others with librdkafka's next metadata refresh for
# leaderless partitions, about 1 s later (1.0-1.5 s seen) - when librdkafka sends that
# refresh to another broker. When it asks the healed node again (2 runs in 5 here), the
# answer is right once that node has caught up: the client writes within a second of it.
HEALED_CLIENT_WRITES_WITHIN_S = 3.0
AFTER_CATCH_UP_WITHIN_S = 1.0
CATCH_UP_WITHIN_S = 20.0


@dataclass(slots=True)
class Attempt:
    partition: int
    value: bytes
    sent: float
    answered: float
    error: ErrorCode | None  # None: no answer (connection failed or timed out)
    offset: int = -1


class RawWriter:
    """Writes one record per Produce (acks=all) round-robin over `targets`
    (partition -> broker), from inside a namespace, noting every attempt."""

    def __init__(self, namespace: str, topic: str, targets: dict[int, str], writer: str) -> None:
        self.topic = topic
        self.targets = targets
        self.writer = writer
        self.attempts: list[Attempt] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.thread = NamespaceThread(namespace, self._run, name=f"writer-{writer}")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._halt.set()
        self.thread.join(30)
        if self.thread.error is not None:
            raise self.thread.error

    def _run(self) -> None:
        clients: dict[str, RawClient] = {}
        seq = itertools.count()
        partitions = itertools.cycle(sorted(self.targets))
        while not self._halt.is_set():
            partition = next(partitions)
            bootstrap = self.targets[partition]
            value = f"{self.writer}-{next(seq)}".encode()
            sent = time.monotonic()
            error: ErrorCode | None = None
            offset = -1
            try:
                if bootstrap not in clients:
                    clients[bootstrap] = RawClient(bootstrap, timeout=20)
                answer = clients[bootstrap].request("Produce", 9, {
                    "acks": -1, "timeout_ms": 15000, "topic_data": [{"name": self.topic, "partition_data": [
                        {"index": partition, "records": encode_batch([Record(0, 0, None, value, [])])}]}]})
                part = answer.responses[0].partition_responses[0]
                error, offset = ErrorCode(part.error_code), part.base_offset
            except OSError:
                old = clients.pop(bootstrap, None)
                if old is not None:
                    old.close()
                time.sleep(0.2)
            with self._lock:
                self.attempts.append(Attempt(partition, value, sent, time.monotonic(), error, offset))
            # Paced, so the writers leave the (shared, two-core) machine to the brokers.
            time.sleep(0.1 if error not in (None, ErrorCode.NONE) else 0.003)
        for client in clients.values():
            client.close()

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def acks(self) -> list[Ack]:
        return [Ack(a.partition, a.offset, a.value, a.answered) for a in self.snapshot()
                if a.error == ErrorCode.NONE]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NamespacedCluster]:
    skip_or_fail_without_namespaces()
    with NetworkLab() as lab:
        c = NamespacedCluster(lab, tmp_path, 3)
        try:
            c.start()
            yield c
        finally:
            c.stop()


class HealedBootstrap:
    """A client that knows only the healed node, started the moment the link returns,
    while that node's Raft log is still behind (it serves the cluster as it was when it
    was cut off, every heartbeat in it expired). Notes the node's first Metadata answer,
    how long a librdkafka producer bootstrapped from it alone takes to write one record
    to every partition, and when the node's own view caught up with a survivor's."""

    def __init__(self, healed: str, survivor: str, topic: str, probe_topic: str, since: float) -> None:
        self.healed, self.survivor = healed, survivor
        self.topic, self.probe_topic = topic, probe_topic
        self.since = since
        self.first_brokers: list[int] = []
        self.first_leaders: dict[int, int] = {}
        self.behind: list[int] = []  # partitions whose epoch the first answer had older
        self.delivered: dict[int, float] = {}
        self.failures: list[str] = []
        self.caught_up: float | None = None

    def run(self) -> None:
        first = self._ask(self.healed, self.topic)
        current = self._ask(self.survivor, self.topic)
        self.first_brokers = sorted(b.node_id for b in first.brokers)
        self.first_leaders = {p.partition_index: p.leader_id for p in first.topics[0].partitions}
        epochs = {p.partition_index: p.leader_epoch for p in current.topics[0].partitions}
        self.behind = sorted(p.partition_index for p in first.topics[0].partitions
                             if p.leader_epoch < epochs[p.partition_index])
        self._produce_and_watch()

    @staticmethod
    def _ask(bootstrap: str, topic: str) -> Any:
        with RawClient(bootstrap) as raw:
            return raw.request("Metadata", 12, {"topics": [{"name": topic}]})

    def _view(self, bootstrap: str) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
        md = self._ask(bootstrap, self.topic)
        return (tuple(sorted(b.node_id for b in md.brokers)),
                tuple(sorted((p.partition_index, p.leader_id, p.leader_epoch) for p in md.topics[0].partitions)))

    def _produce_and_watch(self) -> None:
        """Write one record to every partition through a producer that knows only the
        healed node, and meanwhile watch for the node's own view to catch up."""
        def delivered(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
            if err is not None:
                self.failures.append(f"partition {msg.partition()}: {err}")
            else:
                self.delivered[msg.partition()] = time.monotonic()

        producer = confluent_kafka.Producer({
            "bootstrap.servers": self.healed, "acks": "all", "enable.idempotence": False,
            "message.timeout.ms": int(CATCH_UP_WITHIN_S * 1000), "log_level": 0,
        })
        for p in range(PARTITIONS):
            producer.produce(self.probe_topic, value=f"after-heal-{p}".encode(), partition=p,
                             on_delivery=delivered)
        deadline = time.monotonic() + CATCH_UP_WITHIN_S
        while time.monotonic() < deadline:
            producer.poll(0.1)
            if self.caught_up is None and self._view(self.healed) == self._view(self.survivor):
                self.caught_up = time.monotonic()
            if self.caught_up is not None and len(self.delivered) + len(self.failures) == PARTITIONS:
                break
        producer.flush(1)

    def check(self, victim: int) -> None:
        written = max(self.delivered.values(), default=self.since) - self.since
        caught_up = f"not within {CATCH_UP_WITHIN_S}s" if self.caught_up is None else (
            f"{self.caught_up - self.since:.1f}s")
        print(f"healed node {victim}: its first Metadata answer listed brokers {self.first_brokers}, "
              f"leaders {self.first_leaders}, epochs behind on partitions {self.behind}; a producer "
              f"bootstrapped from it alone wrote every partition {written:.1f}s after healing "
              f"({ {p: round(t - self.since, 2) for p, t in sorted(self.delivered.items())} }); "
              f"its own metadata caught up after {caught_up}")
        if self.behind:
            # Behind, every heartbeat it knows of has expired: it must still name the
            # brokers (itself included), or the client has nobody else to ask.
            assert self.first_brokers == [1, 2, 3], (
                f"the healed node's metadata was behind and listed brokers {self.first_brokers}")
            named = {leader for leader in self.first_leaders.values() if leader != -1}
            assert named <= set(self.first_brokers), (self.first_leaders, self.first_brokers)
        else:
            print("the healed node had caught up before the first question: its stale answer was not seen")
        assert self.caught_up is not None, (
            f"the healed node's metadata did not catch up with the survivors' in {CATCH_UP_WITHIN_S}s")
        assert not self.failures, self.failures
        assert sorted(self.delivered) == list(range(PARTITIONS)), (
            f"only partitions {sorted(self.delivered)} written through the healed node")
        bound = max(HEALED_CLIENT_WRITES_WITHIN_S,
                    self.caught_up - self.since + AFTER_CATCH_UP_WITHIN_S)
        assert written <= bound, (
            f"a client bootstrapped from the healed node took {written:.1f}s to write every "
            f"partition (bound {bound:.1f}s: the node caught up after {caught_up})")


def _metadata(bootstrap: str, topics: list[str]) -> object:
    with RawClient(bootstrap) as raw:
        return raw.request("Metadata", 12, {"topics": [{"name": t} for t in topics]})


def _wait_for_brokers(cluster: NamespacedCluster, count: int) -> None:
    def registered() -> bool:
        return all(len(_metadata(n.bootstrap, []).brokers) == count  # type: ignore[attr-defined]
                   for n in cluster.nodes.values())

    deadline = time.monotonic() + 30
    while not cluster.from_client(registered):
        assert time.monotonic() < deadline, "brokers did not all register"
        time.sleep(0.2)


def _create_topic(bootstrap: str, topic: str, replication_factor: int = 1) -> tuple[dict[int, int], int]:
    """Create the topic: its leader per partition, and the controller (Raft leader)."""
    with RawClient(bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [
            {"name": topic, "num_partitions": PARTITIONS, "replication_factor": replication_factor}],
            "timeout_ms": 10000})
        assert created.topics[0].error_code == 0, created
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    return {p.partition_index: p.leader_id for p in md.topics[0].partitions}, md.controller_id


def _write_each_partition(leaders: dict[int, str], topic: str) -> None:
    """One record (acks=all) to every partition, through its leader's address."""
    for partition, bootstrap in sorted(leaders.items()):
        with RawClient(bootstrap) as raw:
            answer = raw.request("Produce", 9, {"acks": -1, "timeout_ms": 10000, "topic_data": [
                {"name": topic, "partition_data": [
                    {"index": partition, "records": encode_batch([Record(0, 0, None, b"before-cut", [])])}]}]})
        code = answer.responses[0].partition_responses[0].error_code
        assert code == ErrorCode.NONE, (topic, partition, ErrorCode(code).name)


def _moved_off(bootstrap: str, topic: str, partitions: set[int], old_leader: int) -> bool:
    """Whether the metadata names a live leader other than `old_leader` for all of `partitions`."""
    md = _metadata(bootstrap, [topic])
    return all(p.leader_id not in (-1, old_leader)  # type: ignore[attr-defined]
               for p in md.topics[0].partitions if p.partition_index in partitions)  # type: ignore[attr-defined]


def _succeeded(attempts: list[Attempt], partitions: set[int], since: float) -> set[int]:
    return {a.partition for a in attempts if a.error == ErrorCode.NONE and a.sent >= since} & partitions


def _refusals(attempts: list[Attempt], since: float) -> list[Attempt]:
    """Writes answered with an error after `since`."""
    return [a for a in attempts if a.answered >= since and a.error not in (None, ErrorCode.NONE)]


def _timeline(attempts: list[Attempt], since: float) -> list[tuple[str, str, str]]:
    return [(f"+{a.sent - since:.2f}s", f"+{a.answered - since:.2f}s", a.error.name if a.error is not None else "no answer")
            for a in attempts if a.answered >= since][-12:]


@pytest.mark.parametrize("victim_of", ["raft-leader", "raft-follower"])
def test_a_partitioned_node_stops_writing_when_its_lease_expires(cluster: NamespacedCluster, victim_of: str) -> None:
    _wait_for_brokers(cluster, 3)
    topic = "partitioned"
    leaders, controller = cluster.from_client(_create_topic, cluster.nodes[1].bootstrap, topic)
    assert set(leaders.values()) == {1, 2, 3}, leaders
    victim = controller if victim_of == "raft-leader" else next(n for n in (1, 2, 3) if n != controller)
    cut_led = {p for p, leader in leaders.items() if leader == victim}
    live_led = set(leaders) - cut_led
    inside = RawWriter(cluster.nodes[victim].namespace, topic,
                       {p: cluster.nodes[victim].bootstrap for p in cut_led}, "inside")
    outside = RawWriter(cluster.client_namespace, topic,
                        {p: cluster.nodes[leaders[p]].bootstrap for p in live_led}, "outside")
    writers = [inside, outside]
    for w in writers:
        w.start()
    try:
        started = time.monotonic()
        while _succeeded(inside.snapshot() + outside.snapshot(), set(leaders), started) != set(leaders):
            assert time.monotonic() < started + 15, "every partition should take writes before the cut"
            time.sleep(0.1)

        cluster.cut(victim)
        cut = time.monotonic()
        time.sleep(LEASE_S)
        while not _refusals(inside.snapshot(), cut):
            assert time.monotonic() < cut + LEASE_S + REFUSAL_WITHIN_S, (
                f"node {victim} gave no answer to writes within {REFUSAL_WITHIN_S}s after its lease ran "
                f"out; attempts since the cut (sent, answered, error): {_timeline(inside.snapshot(), cut)}")
            time.sleep(0.1)
        watched = time.monotonic()

        late = [a for a in inside.snapshot() if a.error == ErrorCode.NONE and a.sent >= cut + LEASE_S]
        assert not late, (f"node {victim} acknowledged {len(late)} writes started more than one lease "
                          f"({LEASE_S}s) after it was cut off, first at +{late[0].sent - cut:.2f}s")
        last_ok = max((a.sent for a in inside.snapshot() if a.error == ErrorCode.NONE), default=cut)
        refusals = _refusals(inside.snapshot(), cut)
        wrong = {a.error for a in refusals} - RETRIABLE
        assert not wrong, f"node {victim} refused writes with non-retriable errors {wrong}"
        slowest = max(a.answered - a.sent for a in refusals)
        print(f"cut-off node {victim} ({victim_of}): last write acknowledged {last_ok - cut:+.2f}s after "
              f"the cut; then {len(refusals)} refusals "
              f"({sorted({e.name for e in {a.error for a in refusals} if e is not None})}), "
              f"slowest answer {slowest:.2f}s")

        outside_ok = [a.sent for a in outside.snapshot() if a.error == ErrorCode.NONE and cut <= a.sent <= watched]
        marks = [cut, *outside_ok, watched]
        stall = max(b - a for a, b in itertools.pairwise(marks))
        assert _succeeded(outside.snapshot(), live_led, cut + LEASE_S) == live_led, \
            "the majority side stopped writing its own partitions"
        print(f"majority side: longest pause in writes while node {victim} was cut off {stall:.2f}s")

        cluster.heal(victim)
        healed = time.monotonic()
        while _succeeded(inside.snapshot() + outside.snapshot(), set(leaders), healed) != set(leaders):
            assert time.monotonic() < healed + RECOVERY_WITHIN_S, (
                f"partitions {sorted(set(leaders) - _succeeded(inside.snapshot(), cut_led, healed))} "
                f"not writable {RECOVERY_WITHIN_S}s after the partition healed\n"
                f"{cluster.nodes[victim].log_tail(30)}")
            time.sleep(0.1)
        print(f"every partition writable again {time.monotonic() - healed:.1f}s after healing")
    finally:
        for w in writers:
            w.stop()

    acks = inside.acks() + outside.acks()
    stored, highs = cluster.from_client(read_everything, cluster.nodes[1].bootstrap, topic, PARTITIONS)
    verdict = check(acks, stored, high_watermarks=highs)
    print(f"partition of node {victim}: {verdict.summary()}")
    assert verdict.clean, (verdict.summary(), verdict.details[:5], verdict.duplicated[:5],
                           verdict.conflicting_offsets[:5], verdict.out_of_order[:5], verdict.offset_gaps[:5])


@pytest.mark.parametrize("victim_of", ["raft-leader", "raft-follower"])
def test_the_majority_takes_over_a_partitioned_leaders_replicated_partitions_without_two_writers(
        cluster: NamespacedCluster, victim_of: str) -> None:
    """Three replicas per partition: once the cut-off leader's heartbeats and lease have
    run out, the majority seals its segments and writes on, while the cut-off node
    refuses. After healing, every acknowledged record from either side is there once,
    and no offset holds two records; and a client that bootstraps from the healed node
    alone, while that node's metadata is still catching up, can write at once."""
    _wait_for_brokers(cluster, 3)
    topic = "replicated-partitioned"
    leaders, controller = cluster.from_client(_create_topic, cluster.nodes[1].bootstrap, topic, 3)
    # Written only by the client that bootstraps from the healed node, so its records
    # (not idempotent: that would wait for the healed node's producer-id allocation,
    # which goes through Raft) stay out of the main topic's verdict.
    probe_topic = f"{topic}-after-heal"
    probe_leaders, _ = cluster.from_client(_create_topic, cluster.nodes[1].bootstrap, probe_topic, 3)
    # A record on every replica first: failover takes over a dead leader's partition only
    # on a follower that holds a copy of it.
    cluster.from_client(_write_each_partition, {p: cluster.nodes[n].bootstrap for p, n in probe_leaders.items()},
                        probe_topic)
    # A cut-off Raft leader returns with entries of its own to throw away, a follower only
    # with entries to fetch: both catch up on the majority's log after healing.
    victim = controller if victim_of == "raft-leader" else next(n for n in (1, 2, 3) if n != controller)
    others = [n for n in (1, 2, 3) if n != victim]
    cut_led = {p for p, leader in leaders.items() if leader == victim}
    assert cut_led, leaders
    inside = RawWriter(cluster.nodes[victim].namespace, topic,
                       {p: cluster.nodes[victim].bootstrap for p in cut_led}, "inside")
    # The majority side writes each partition (a writer apiece, so a request stuck on
    # the cut-off node holds up no other) through a node of its own, which forwards to
    # whoever leads: the cut-off node first, a survivor after the takeover.
    outsiders = [RawWriter(cluster.client_namespace, topic, {p: cluster.nodes[others[p % 2]].bootstrap},
                           f"outside{p}") for p in leaders]
    writers = [inside, *outsiders]

    def outside() -> list[Attempt]:
        return [a for w in outsiders for a in w.snapshot()]

    for w in writers:
        w.start()
    try:
        started = time.monotonic()
        while _succeeded(inside.snapshot() + outside(), set(leaders), started) != set(leaders):
            assert time.monotonic() < started + 15, "every partition should take writes before the cut"
            time.sleep(0.1)

        cluster.cut(victim)
        cut = time.monotonic()
        survivor = cluster.nodes[others[0]].bootstrap
        while not cluster.from_client(_moved_off, survivor, topic, cut_led, victim):
            assert time.monotonic() < cut + METADATA_MOVES_WITHIN_S, (
                f"the metadata still names node {victim} (or nobody) for {sorted(cut_led)} "
                f"{METADATA_MOVES_WITHIN_S}s after it was cut off\n"
                + "\n".join(cluster.nodes[n].log_tail(15) for n in others))
            time.sleep(0.2)
        reassigned = time.monotonic() - cut
        while _succeeded(outside(), cut_led, cut + LEASE_S) != cut_led:
            assert time.monotonic() < cut + TAKEOVER_WITHIN_S, (
                f"the majority did not take over {sorted(cut_led)} within {TAKEOVER_WITHIN_S}s of cutting "
                f"off node {victim}\n" + "\n".join(cluster.nodes[n].log_tail(15) for n in others))
            time.sleep(0.2)
        took_over = time.monotonic() - cut
        while not _refusals(inside.snapshot(), cut):
            assert time.monotonic() < cut + LEASE_S + REFUSAL_WITHIN_S, (
                f"node {victim} gave no answer to writes; attempts since the cut: "
                f"{_timeline(inside.snapshot(), cut)}")
            time.sleep(0.1)
        late = [a for a in inside.snapshot() if a.error == ErrorCode.NONE and a.sent >= cut + LEASE_S]
        assert not late, f"node {victim} acknowledged {len(late)} writes after its lease ran out"
        wrong = {a.error for a in _refusals(inside.snapshot(), cut)} - RETRIABLE
        assert not wrong, f"node {victim} refused writes with non-retriable errors {wrong}"
        slowest = max((a for a in outside() if a.sent >= cut), key=lambda a: a.answered - a.sent)
        print(f"node {victim} cut off: its partitions had new leaders after {reassigned:.1f}s, "
              f"and took the majority's writes again after {took_over:.1f}s; slowest answer on the "
              f"majority side {slowest.answered - slowest.sent:.1f}s "
              f"({slowest.error.name if slowest.error is not None else 'no answer'}, partition {slowest.partition})")

        cluster.heal(victim)
        healed = time.monotonic()
        probe = HealedBootstrap(cluster.nodes[victim].bootstrap, survivor, topic, probe_topic, healed)
        prober = NamespaceThread(cluster.client_namespace, probe.run, name="healed-bootstrap")
        prober.start()
        while _succeeded(outside(), set(leaders), healed) != set(leaders):
            assert time.monotonic() < healed + RECOVERY_WITHIN_S, "partitions not writable after healing"
            time.sleep(0.1)
        prober.join(RECOVERY_WITHIN_S + CATCH_UP_WITHIN_S)
        assert not prober.is_alive(), "the client bootstrapping from the healed node is still running"
        if prober.error is not None:
            raise prober.error
        # The healed node catches up on what it missed before the read-back asks it.
        time.sleep(2)
    finally:
        for w in writers:
            w.stop()
    probe.check(victim)

    acks = [a for w in writers for a in w.acks()]
    for n in cluster.nodes:
        stored, highs = cluster.from_client(read_everything, cluster.nodes[n].bootstrap, topic, PARTITIONS)
        verdict = check(acks, stored, high_watermarks=highs)
        print(f"read through node {n}: {verdict.summary()}")
        assert verdict.clean, (verdict.summary(), verdict.details[:5], verdict.duplicated[:5],
                               verdict.conflicting_offsets[:5], verdict.out_of_order[:5],
                               verdict.offset_gaps[:5])
