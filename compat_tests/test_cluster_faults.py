"""kill -9 in a three-node cluster under load: idempotent acks=all producers and a
consumer group keep running while one node (a Raft follower, then the Raft leader)
crashes and comes back.

While the node is down, every partition led by a live node keeps accepting writes;
after it returns, every partition does. A third run kills a node while segments
rotate between nodes every few hundred records and keeps it down past the session
timeout, so leadership moves around the hole it leaves. Read back at the end, no acknowledged record
is missing or stored twice, and no offset holds a record other than the one
acknowledged for it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, encode_batch
from compat_tests.cluster import Cluster
from compat_tests.raw_client import RawClient
from compat_tests.test_cluster_faults_workload import (
    Ack,
    GroupReader,
    ProducerLoad,
    check,
    read_everything,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(120)]

PARTITIONS = 6
# Writes to partitions led by live nodes must go on within this long of the kill
# (client retries and metadata refreshes included).
LIVE_PARTITIONS_WITHIN_S = 6.0
RECOVERY_WITHIN_S = 20.0
# Records per segment in the rotating run: with ~300 records/s over six partitions,
# every partition rolls to another node about every two seconds.
ROTATE_EVERY = 100
# broker.session.timeout.ms is 9 s: after that the metadata counts the node dead.
DOWN_PAST_SESSION_TIMEOUT_S = 11.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, 3, env={"WALRUS_GROUP_INITIAL_REBALANCE_DELAY_MS": "100"}) as c:
        c.wait_for_brokers(3)
        yield c


def _create_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> dict[int, int]:
    """Create the topic; its leader per partition."""
    with RawClient(bootstrap) as raw:
        created = raw.request("CreateTopics", 7, {"topics": [
            {"name": topic, "num_partitions": PARTITIONS, "replication_factor": 1,
             "configs": [{"name": k, "value": v} for k, v in configs.items()]}], "timeout_ms": 10000})
        assert created.topics[0].error_code == 0, created
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    return {p.partition_index: p.leader_id for p in md.topics[0].partitions}


def _wait_for_acks(producers: list[ProducerLoad], partitions: set[int], since: float, within: float) -> set[int]:
    """Partitions of `partitions` that got an acknowledgement after `since`, waiting up
    to `within` s for all of them."""
    deadline = since + within
    while True:
        for producer in producers:
            producer.wait_alive()
        acked = {a.partition for p in producers for a in p.acks_after(since)} & partitions
        if acked == partitions or time.monotonic() > deadline:
            return acked
        time.sleep(0.1)


def _longest_stall(producers: list[ProducerLoad], partitions: set[int], start: float, end: float) -> float:
    """The longest time between consecutive acknowledgements of one of `partitions`
    within [start, end], counting from start and up to end."""
    longest = 0.0
    for partition in partitions:
        times = sorted(a.at for p in producers for a in p.acks_after(start) if a.partition == partition)
        marks = [start, *(t for t in times if t <= end), end]
        longest = max(longest, *(b - a for a, b in itertools.pairwise(marks)))
    return longest


def _survivors_keep_serving(producers: list[ProducerLoad], leaders: dict[int, int], victim: int,
                            killed: float, victim_of: str) -> None:
    live_led = {p for p, leader in leaders.items() if leader != victim}
    dead_led = set(leaders) - live_led
    served = _wait_for_acks(producers, live_led, killed, LIVE_PARTITIONS_WITHIN_S)
    assert served == live_led, (
        f"partitions led by live nodes {sorted(live_led - served)} took no write within "
        f"{LIVE_PARTITIONS_WITHIN_S}s of killing node {victim}")
    keep_serving = time.monotonic()
    time.sleep(2)
    assert _wait_for_acks(producers, live_led, keep_serving, 0) == live_led, "live partitions stalled"
    # Nothing can be written where the leader is dead: its data lives there alone.
    assert not {a.partition for p in producers for a in p.acks_after(killed + 0.5)} & dead_led
    stall = _longest_stall(producers, live_led, killed, time.monotonic())
    print(f"node {victim} ({victim_of}) killed; longest pause in writes to a partition led by "
          f"a live node: {stall:.2f}s")
    assert stall < LIVE_PARTITIONS_WITHIN_S, stall


def _crash_and_recover(cluster: Cluster, victim_of: str, topic: str, *, rotating: bool = False) -> None:
    """Kill -9 a node under load and restart it. Without rotation, partitions keep
    their leaders, so the test also holds the survivors to serving theirs. With
    rotation, segments roll every few hundred records onto whichever node the metadata
    picks (the dead one too, until its heartbeats are older than the session timeout),
    and the node stays down past that timeout."""
    bootstrap = cluster.bootstrap
    leaders = _create_topic(cluster.nodes[1].bootstrap, topic,
                            {"segment.entries": str(ROTATE_EVERY)} if rotating else {})
    assert set(leaders.values()) == {1, 2, 3}, leaders
    controller = cluster.controller_id()
    victim = controller if victim_of == "raft-leader" else next(n for n in (1, 2, 3) if n != controller)
    producers = [ProducerLoad(bootstrap, topic, PARTITIONS, f"w{i}") for i in range(2)]
    group = GroupReader(bootstrap, topic, f"{topic}-readers")
    for thread in (*producers, group):
        thread.start()
    try:
        started = time.monotonic()
        assert _wait_for_acks(producers, set(leaders), started, 15) == set(leaders), "warm-up"

        cluster.nodes[victim].kill()
        killed = time.monotonic()
        if rotating:
            time.sleep(DOWN_PAST_SESSION_TIMEOUT_S)
        else:
            _survivors_keep_serving(producers, leaders, victim, killed, victim_of)

        cluster.nodes[victim].start(timeout=60)
        restarted = time.monotonic()
        recovered = _wait_for_acks(producers, set(leaders), restarted, RECOVERY_WITHIN_S)
        assert recovered == set(leaders), (
            f"partitions {sorted(set(leaders) - recovered)} took no write within {RECOVERY_WITHIN_S}s "
            f"of node {victim} returning; producers: "
            f"{[(p.writer, p.sent, len(p.acks), p.failures[-2:]) for p in producers]}")
        print(f"every partition writable again {time.monotonic() - restarted:.1f}s after the restart")
        time.sleep(1)
    finally:
        for producer in producers:
            producer.finish(timeout=30)
    try:
        for producer in producers:
            assert producer.fatal_error() is None, producer.fatal_error()
            assert producer.unflushed == 0, f"{producer.writer}: {producer.unflushed} records never answered"
        acks = [a for p in producers for a in p.acks]
        stored, highs = read_everything(cluster.nodes[1].bootstrap, topic, PARTITIONS)
        # librdkafka acknowledges an in-doubt record without an offset when a later one
        # succeeds: those count like any other acknowledgement.
        print(f"acknowledged without an offset: {sum(a.offset is None for a in acks)}")
        verdict = check(acks, stored, high_watermarks=highs)
        failures = [f for p in producers for f in p.failures]
        sent = sum(p.sent for p in producers)
        print(f"{victim_of} kill: {verdict.summary()} delivery_failures={len(failures)}")
        # Every record got its answer, and records wait 45 s for a leader, which
        # outlasts the node's absence: a refusal is a broker fault. One in a thousand
        # leaves room for a timeout on a slow machine (0 in every run measured).
        assert len(acks) + len(failures) == sent, (len(acks), len(failures), sent)
        assert len(failures) <= max(1, sent // 1000), (len(failures), sent, failures[:5])
        assert verdict.clean, (verdict.summary(), verdict.details[:5], verdict.duplicated[:5],
                               verdict.conflicting_offsets[:5], verdict.out_of_order[:5], verdict.offset_gaps[:5])
        # The group, through coordinator moves and a rebalance, still reads every
        # acknowledged record at least once (redelivery after a crash is allowed).
        wanted = {a.value for a in acks}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not wanted <= set(group.values):
            time.sleep(0.2)
        unread = wanted - set(group.values)
        redelivered = sum(n - 1 for n in group.values.values() if n > 1)
        print(f"group read {len(group.values)} distinct records, {len(unread)} acknowledged unread, "
              f"{redelivered} redelivered")
        assert not unread, f"the group never read {len(unread)} acknowledged records"
        assert not group.errors, group.errors[:5]
    finally:
        group.finish()


def test_kill_9_of_a_raft_follower_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    _crash_and_recover(cluster, "raft-follower", "crash-follower")


def test_kill_9_of_the_raft_leader_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    _crash_and_recover(cluster, "raft-leader", "crash-leader")


def test_kill_9_while_segments_rotate_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    _crash_and_recover(cluster, "raft-follower", "crash-rotating", rotating=True)


def test_an_idempotent_producer_outlives_leadership_coming_back_to_a_node(cluster: Cluster) -> None:
    """Segments roll every 30 records, so leadership goes round the three nodes and
    back: a node leads the partition again after others wrote sequences it never saw."""
    topic = "idempotent-rotation"
    _create_topic(cluster.nodes[1].bootstrap, topic, {"segment.entries": "30"})
    producer = confluent_kafka.Producer({
        "bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 0, "max.in.flight.requests.per.connection": 1, "log_level": 0,
    })
    acks: list[Ack] = []
    errors: list[str] = []

    def on_delivery(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        if err is None:
            acks.append(Ack(msg.partition(), msg.offset(), msg.value(), time.monotonic()))
        else:
            errors.append(str(err))

    for i in range(240):
        producer.produce(topic, value=f"solo-{i}".encode(), partition=0, on_delivery=on_delivery)
        # One record per request: each roll falls between two of this producer's batches.
        producer.flush(30)
        if errors:
            break
    assert not errors, f"after {len(acks)} acknowledged records: {errors[0]}"
    stored, highs = read_everything(cluster.nodes[1].bootstrap, topic, PARTITIONS)
    verdict = check(acks, stored, high_watermarks=highs)
    assert verdict.clean, verdict.summary()


def _leader_and_epoch(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    with RawClient(bootstrap) as raw:
        md = raw.request("Metadata", 12, {"topics": [{"name": topic}]})
    p = next(p for p in md.topics[0].partitions if p.partition_index == partition)
    return int(p.leader_id), int(p.leader_epoch)


def _batch(pid: int, count: int, seq: int) -> bytes:
    return encode_batch([Record(i, 0, None, f"s{seq + i}".encode(), []) for i in range(count)],
                        producer_id=pid, producer_epoch=0, base_sequence=seq,
                        base_timestamp=int(time.time() * 1000))


def _produce_raw(cluster: Cluster, node: int | None, topic: str, records: bytes) -> tuple[int, int]:
    """Send until the answer is not NOT_LEADER_OR_FOLLOWER (what a node answers while
    leadership is still moving to it), as a client would: to `node`, or with None to
    whichever node the metadata names as the leader at each try."""
    deadline = time.monotonic() + 10
    while True:
        if node is None:
            running = next(n for n in cluster.nodes.values()
                           if n.process is not None and n.process.poll() is None)
            target = _leader_and_epoch(running.bootstrap, topic, 0)[0]
            if target not in cluster.nodes:  # no leader named right now
                assert time.monotonic() < deadline, f"no leader for {topic}-0"
                time.sleep(0.1)
                continue
        else:
            target = node
        with RawClient(cluster.nodes[target].bootstrap) as raw:
            answer = raw.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": topic, "partition_data": [{"index": 0, "records": records}]}]})
        part = answer.responses[0].partition_responses[0]
        if part.error_code != ErrorCode.NOT_LEADER_OR_FOLLOWER or time.monotonic() > deadline:
            return int(part.error_code), int(part.base_offset)
        time.sleep(0.1)


def _producer_id(cluster: Cluster) -> int:
    with RawClient(cluster.nodes[1].bootstrap) as raw:
        return int(raw.request("InitProducerId", 4, {"transactional_id": None,
                                                     "transaction_timeout_ms": 60000}).producer_id)


def _wait_for_roll(cluster: Cluster, topic: str, was: tuple[int, int]) -> int:
    """The new leader of partition 0 once its segment has rolled away from `was`."""
    deadline = time.monotonic() + 10
    while (now := _leader_and_epoch(cluster.nodes[1].bootstrap, topic, 0)) == was or now[0] < 0:
        assert time.monotonic() < deadline, f"the segment did not roll from {was}"
        time.sleep(0.1)
    return now[0]


def test_a_new_segment_leader_refuses_a_producers_sequence_gap(cluster: Cluster) -> None:
    """Three records fill a segment, which rolls to another node; that node learns the
    producer's last sequence and refuses a gap, as any single Kafka leader would."""
    topic = "sequence-gap"
    _create_topic(cluster.nodes[1].bootstrap, topic, {"segment.entries": "3"})
    first = _leader_and_epoch(cluster.nodes[1].bootstrap, topic, 0)
    pid = _producer_id(cluster)
    assert _produce_raw(cluster, first[0], topic, _batch(pid, 3, 0)) == (ErrorCode.NONE, 0)
    new_leader = _wait_for_roll(cluster, topic, first)
    assert new_leader != first[0]
    # Sequences 3 and 4 were never written: 5 is a gap.
    code, _ = _produce_raw(cluster, new_leader, topic, _batch(pid, 1, 5))
    assert code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, (
        f"node {new_leader} answered {ErrorCode(code).name} to a batch 2 sequences past the producer's last")
    assert _produce_raw(cluster, new_leader, topic, _batch(pid, 2, 3)) == (ErrorCode.NONE, 3)


def test_sequences_learnt_by_a_leader_survive_its_restart(cluster: Cluster) -> None:
    topic = "sequence-gap-restart"
    _create_topic(cluster.nodes[1].bootstrap, topic, {"segment.entries": "3"})
    first = _leader_and_epoch(cluster.nodes[1].bootstrap, topic, 0)
    writer, other = _producer_id(cluster), _producer_id(cluster)
    assert _produce_raw(cluster, first[0], topic, _batch(writer, 3, 0)) == (ErrorCode.NONE, 0)
    second = _wait_for_roll(cluster, topic, first)
    # The next leader learnt `writer`'s sequences, then crashes before `writer` writes to it.
    assert _produce_raw(cluster, second, topic, _batch(other, 2, 0))[0] == ErrorCode.NONE
    cluster.nodes[second].kill()
    cluster.nodes[second].start(timeout=60)
    at_second = _leader_and_epoch(cluster.nodes[1].bootstrap, topic, 0)
    assert _produce_raw(cluster, second, topic, _batch(other, 1, 2))[0] == ErrorCode.NONE
    third = _wait_for_roll(cluster, topic, at_second)
    code, _ = _produce_raw(cluster, third, topic, _batch(writer, 1, 5))
    assert code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, (
        f"node {third} answered {ErrorCode(code).name} to a batch 2 sequences past the producer's last")
