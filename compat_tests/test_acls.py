"""ACLs with real clients against real broker processes: confluent-kafka's and
kafka-python's admin APIs, a DENY that a real producer runs into, ACLs that outlive a
restart, and ACLs made through one node of a cluster seen and enforced by another."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from compat_tests.cluster import Cluster
from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat

ANONYMOUS = "User:ANONYMOUS"
EVERYTHING = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                              AclOperation.ANY, AclPermissionType.ANY)
T = TypeVar("T")


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create(client: AdminClient, *bindings: AclBinding) -> None:
    for future in client.create_acls(list(bindings), request_timeout=15).values():
        assert future.result(timeout=20) is None


def describe(client: AdminClient, flt: AclBindingFilter = EVERYTHING) -> list[AclBinding]:
    return sorted(client.describe_acls(flt, request_timeout=15).result(timeout=20), key=str)


def delete(client: AdminClient, *filters: AclBindingFilter) -> list[list[AclBinding]]:
    return [sorted(f.result(timeout=20), key=str) for f in client.delete_acls(list(filters), request_timeout=15).values()]


def deny_write(topic: str) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, ANONYMOUS, "*",
                      AclOperation.WRITE, AclPermissionType.DENY)


def produce_error(bootstrap: str, topic: str) -> KafkaError | None:
    """The delivery error of one message (None: delivered)."""
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000, "retries": 0})
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    assert len(errors) == 1
    return errors[0]


def eventually(check: Callable[[], T], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def single(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


def test_confluent_admin_creates_describes_and_deletes_acls(single: BrokerProcess) -> None:
    client = admin(single.bootstrap)
    read = AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
                      AclOperation.READ, AclPermissionType.ALLOW)
    prefixed = AclBinding(ResourceType.TOPIC, "ord", ResourcePatternType.PREFIXED, "User:bob", "10.0.0.1",
                          AclOperation.WRITE, AclPermissionType.DENY)
    group = AclBinding(ResourceType.GROUP, "readers", ResourcePatternType.LITERAL, "User:alice", "*",
                       AclOperation.READ, AclPermissionType.ALLOW)
    create(client, read, prefixed, group)
    assert describe(client) == sorted([read, prefixed, group], key=str)
    match = AclBindingFilter(ResourceType.TOPIC, "orders-eu", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert describe(client, match) == [prefixed]
    by_principal = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                    AclOperation.ANY, AclPermissionType.ANY)
    assert describe(client, by_principal) == sorted([read, group], key=str)

    bad = AclBinding(ResourceType.BROKER, "my-cluster", ResourcePatternType.LITERAL, "User:x", "*",
                     AclOperation.ALTER, AclPermissionType.ALLOW)
    (future,) = client.create_acls([bad], request_timeout=15).values()
    with pytest.raises(KafkaException) as refused:
        future.result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.INVALID_REQUEST

    removed = delete(client, match, by_principal)
    assert removed == [[prefixed], sorted([read, group], key=str)]
    assert describe(client) == []


def test_kafka_python_admin_manages_acls(single: BrokerProcess) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KResourceType

    client = KafkaAdminClient(bootstrap_servers=single.bootstrap, request_timeout_ms=15000)
    try:
        acl = ACL("User:carol", "*", ACLOperation.DESCRIBE, ACLPermissionType.ALLOW,
                  ResourcePattern(KResourceType.TOPIC, "logs", ACLResourcePatternType.PREFIXED))
        created = client.create_acls([acl])
        assert created["failed"] == [] and len(created["succeeded"]) == 1
        flt = ACLFilter("User:carol", None, ACLOperation.ANY, ACLPermissionType.ANY,
                        ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY))
        found, error = client.describe_acls(flt)
        assert error.errno == 0
        assert [(a.principal, a.resource_pattern.resource_name, a.resource_pattern.pattern_type) for a in found] == [
            ("User:carol", "logs", ACLResourcePatternType.PREFIXED)]
        ((_, removed, delete_error),) = client.delete_acls([flt])
        assert delete_error.errno == 0 and len(removed) == 1
        assert client.describe_acls(flt)[0] == []
    finally:
        client.close()


def test_a_deny_write_acl_stops_a_real_producer_until_deleted(single: BrokerProcess) -> None:
    topic = f"guarded-{uuid.uuid4().hex[:8]}"
    assert produce_error(single.bootstrap, topic) is None
    client = admin(single.bootstrap)
    create(client, deny_write(topic))
    error = produce_error(single.bootstrap, topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(single.bootstrap, topic + "-other") is None
    delete(client, AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                                    AclOperation.ANY, AclPermissionType.ANY))
    assert produce_error(single.bootstrap, topic) is None


def test_acls_survive_a_broker_restart(single: BrokerProcess) -> None:
    client = admin(single.bootstrap)
    create(client, deny_write("kept"))
    single.restart()
    client = admin(single.bootstrap)
    assert describe(client) == [deny_write("kept")]
    error = produce_error(single.bootstrap, "kept")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


@pytest.mark.slow
def test_a_cluster_node_sees_and_enforces_acls_made_through_another(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.wait_for_brokers(3)
        topic = f"clustered-{uuid.uuid4().hex[:8]}"
        assert produce_error(cluster.nodes[3].bootstrap, topic) is None
        create(admin(cluster.nodes[1].bootstrap), deny_write(topic))

        def seen_on_the_other_nodes() -> None:
            for node in (2, 3):
                assert describe(admin(cluster.nodes[node].bootstrap)) == [deny_write(topic)]

        eventually(seen_on_the_other_nodes)
        for node in (2, 3):
            error = produce_error(cluster.nodes[node].bootstrap, topic)
            assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
