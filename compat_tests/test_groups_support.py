"""Shared parts of the consumer-group compatibility tests: a broker tuned for quick
rebalances, a ledger of what each member consumed, and one consumer-group member per
real client, each running in its own thread and committing after every batch.

(No tests here: the module is named for the group tests it serves.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiokafka.errors
import confluent_kafka
import kafka
import kafka.errors
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from kafka.admin import NewTopic

from compat_tests.harness import BrokerProcess

# Rebalances in seconds, not minutes: a short initial delay and short sessions.
GROUP_ENV = {
    "WALRUS_GROUP_INITIAL_REBALANCE_DELAY_MS": "100",
    "WALRUS_GROUP_MIN_SESSION_TIMEOUT_MS": "500",
}
SESSION_TIMEOUT_MS = 4000
HEARTBEAT_INTERVAL_MS = 250


@contextlib.contextmanager
def group_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data", env=GROUP_ENV).start()
    try:
        yield process
    finally:
        process.stop()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True, slots=True)
class Delivery:
    member: str
    partition: int
    offset: int
    value: bytes


class Ledger:
    """Every record every member was handed, in order, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []

    def add(self, member: str, partition: int, offset: int, value: bytes) -> None:
        with self._lock:
            self.deliveries.append(Delivery(member, partition, offset, value))

    def values(self) -> Counter[bytes]:
        with self._lock:
            return Counter(d.value for d in self.deliveries)

    def count_by(self, member: str) -> int:
        with self._lock:
            return sum(d.member == member for d in self.deliveries)

    def partitions_of(self, member: str) -> set[int]:
        with self._lock:
            return {d.partition for d in self.deliveries if d.member == member}


class SteadyProducer:
    """Produces numbered records round-robin over the partitions from a thread, until
    stopped, so that rebalances happen while data keeps arriving."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, prefix: str = "r") -> None:
        self._producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
        self._topic = topic
        self._partitions = partitions
        self._prefix = prefix
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent: list[bytes] = []

    def send(self, count: int) -> list[bytes]:
        start = len(self.sent)
        for i in range(start, start + count):
            value = f"{self._prefix}-{i}".encode()
            self._producer.send(self._topic, value, partition=i % self._partitions)
            self.sent.append(value)
        self._producer.flush()
        return self.sent[start:]

    def start(self, interval_s: float = 0.005) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self.send(self._partitions)
                time.sleep(interval_s)

        self._thread = threading.Thread(target=run, name="steady-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._producer.flush()

    def close(self) -> None:
        self.stop()
        self._producer.close()


class Member(Protocol):
    name: str
    assignments: int

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class MemberSpec:
    bootstrap: str
    topic: str
    group: str
    ledger: Ledger
    instance_id: str | None = None


@dataclass
class ThreadedMember:
    """A consumer loop in its own thread; errors surface in `stop()`."""

    name: str
    spec: MemberSpec
    # Assignments received (rebalance callbacks), to tell rebalances apart.
    assignments: int = 0
    assigned: list[set[int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None
    # An application that carries on when a commit is refused (its group was lost),
    # accepting that the uncommitted records come again: at-least-once.
    tolerate_failed_commits: bool = False
    failed_commits: int = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name=f"member-{self.name}", daemon=True)
        self._thread.start()

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self._error = exc

    def run(self) -> None:
        raise NotImplementedError

    def on_assigned(self, partitions: set[int]) -> None:
        self.assignments += 1
        self.assigned.append(partitions)

    def commit_failed(self, error: BaseException) -> None:
        if not self.tolerate_failed_commits:
            raise error
        self.failed_commits += 1

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), f"member {self.name} did not stop"
        if self._error is not None:
            raise AssertionError(f"member {self.name} failed: {self._error!r}") from self._error


class KafkaPythonMember(ThreadedMember):
    def run(self) -> None:
        spec = self.spec
        member = self

        class Listener(kafka.ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: object) -> None:
                pass

            def on_partitions_assigned(self, assigned: list[kafka.TopicPartition]) -> None:
                member.on_assigned({tp.partition for tp in assigned})

        consumer = kafka.KafkaConsumer(
            bootstrap_servers=spec.bootstrap,
            group_id=spec.group,
            group_instance_id=spec.instance_id,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )
        consumer.subscribe([spec.topic], listener=Listener())
        try:
            while not self.stopping:
                batch = consumer.poll(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        spec.ledger.add(self.name, r.partition, r.offset, r.value)
                if batch:
                    # Commit before the next poll, where a rebalance may hand these
                    # partitions to another member.
                    try:
                        consumer.commit()
                    except kafka.errors.KafkaError as exc:
                        self.commit_failed(exc)
        finally:
            consumer.close(autocommit=False)


class ConfluentMember(ThreadedMember):
    def run(self) -> None:
        spec = self.spec
        config = {
            "bootstrap.servers": spec.bootstrap,
            "group.id": spec.group,
            "client.id": self.name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "topic.metadata.refresh.interval.ms": 1000,
        }
        if spec.instance_id is not None:
            config["group.instance.id"] = spec.instance_id
        consumer = confluent_kafka.Consumer(config)

        def assigned(c: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]) -> None:
            self.on_assigned({tp.partition for tp in partitions})

        consumer.subscribe([spec.topic], on_assign=assigned)
        try:
            while not self.stopping:
                messages = consumer.consume(num_messages=200, timeout=0.1)
                taken = False
                for m in messages:
                    if m.error() is not None:
                        continue
                    spec.ledger.add(self.name, m.partition(), m.offset(), m.value())
                    taken = True
                if taken:
                    try:
                        consumer.commit(asynchronous=False)
                    except confluent_kafka.KafkaException as exc:
                        self.commit_failed(exc)
        finally:
            consumer.close()


class AiokafkaMember(ThreadedMember):
    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        spec = self.spec
        member = self
        consumer = AIOKafkaConsumer(
            bootstrap_servers=spec.bootstrap,
            group_id=spec.group,
            group_instance_id=spec.instance_id,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            metadata_max_age_ms=1000,
        )

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: object) -> None:
                pass

            async def on_partitions_assigned(self, assigned: object) -> None:
                member.on_assigned({tp.partition for tp in assigned})  # type: ignore[attr-defined]

        await consumer.start()
        consumer.subscribe([spec.topic], listener=Listener())
        try:
            while not self.stopping:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        spec.ledger.add(self.name, r.partition, r.offset, r.value)
                if batch:
                    try:
                        await consumer.commit()
                    except aiokafka.errors.KafkaError as exc:
                        self.commit_failed(exc)
        finally:
            await consumer.stop()


MEMBER_TYPES: dict[str, type[ThreadedMember]] = {
    "kafka-python": KafkaPythonMember,
    "aiokafka": AiokafkaMember,
    "confluent-kafka": ConfluentMember,
}
CLIENTS = tuple(MEMBER_TYPES)

_names = itertools.count()


def new_member(client: str, spec: MemberSpec, name: str | None = None) -> ThreadedMember:
    return MEMBER_TYPES[client](name or f"{client}-{next(_names)}", spec)


def duplicates_and_losses(sent: list[bytes], ledger: Ledger) -> tuple[list[bytes], list[bytes]]:
    seen = ledger.values()
    duplicates = sorted(v for v, n in seen.items() if n > 1)
    losses = [v for v in sent if v not in seen]
    return duplicates, losses


def committed_total(bootstrap: str, group: str) -> int:
    """The sum of the group's committed offsets: with partitions that start at offset
    0, how many records its commits cover."""
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return sum(om.offset for om in admin.list_group_offsets({group: None})[group].values())
    finally:
        admin.close()
