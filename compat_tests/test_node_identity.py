"""Only a connection that proved it is a node (the WALRUS-NODE SASL exchange, keyed by
the cluster secret) is treated as one: the client id nodes use proves nothing, gets no
ACL exemption, and a replica id it claims moves no high watermark."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.protocol.errors import ErrorCode
from broker.protocol.records import encode_batch
from broker.security import node_identity
from compat_tests.cluster import Cluster
from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

pytestmark = pytest.mark.compat

IMPOSTOR = "walrus-interbroker"


def _acl(resource_type: int, name: str, operation: int) -> dict[str, Any]:
    # DENY for every principal from every host.
    return {"resource_type": resource_type, "resource_name": name, "resource_pattern_type": 3,
            "principal": "User:*", "host": "*", "operation": operation, "permission_type": 2}


TOPIC, CLUSTER = 2, 4
READ, WRITE, ALTER = 3, 4, 7


def _produce(raw: RawClient, topic: str, acks: int = 1, timeout_ms: int = 5000) -> int:
    answer = raw.request("Produce", 9, {
        "transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
        "topic_data": [{"name": topic, "partition_data": [
            {"index": 0, "records": encode_batch([(b"k", b"v")])}]}]})
    return int(answer.responses[0].partition_responses[0].error_code)


def _fetch(raw: RawClient, topic: str, offset: int, replica_id: int = -1) -> Any:
    return raw.request("Fetch", 12, {
        "replica_id": replica_id, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
            "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""}).responses[0].partitions[0]


def _latest(raw: RawClient, topic: str) -> int:
    answer = raw.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                        "timestamp": -1}]}]})
    return int(answer.topics[0].partitions[0].offset)


def _sasl(raw: RawClient, node_id: int, key: bytes) -> int:
    """The node's side of the exchange over a raw connection; the final error code."""
    shake = raw.request("SaslHandshake", 1, {"mechanism": node_identity.MECHANISM})
    assert shake.error_code == 0 and shake.mechanisms == [node_identity.MECHANISM]
    nonce = node_identity.new_nonce()
    challenge = raw.request("SaslAuthenticate", 2, {
        "auth_bytes": node_identity.first_message(node_id, nonce)})
    assert challenge.error_code == 0 and len(challenge.auth_bytes) == node_identity.NONCE_BYTES
    answer = raw.request("SaslAuthenticate", 2, {"auth_bytes": node_identity.proof(
        key, node_id, nonce, bytes(challenge.auth_bytes))})
    return int(answer.error_code)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker whose topic "guarded" nobody may read or write, and whose ACLs nobody
    may change: everyone but a proven node is refused."""
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        with RawClient(broker.bootstrap) as raw:
            created = raw.request("CreateTopics", 7, {"topics": [{
                "name": "guarded", "num_partitions": 1, "replication_factor": 1}],
                "timeout_ms": 10000})
            assert created.topics[0].error_code == 0, created
            assert _produce(raw, "guarded") == 0
            made = raw.request("CreateAcls", 3, {"creations": [
                _acl(TOPIC, "guarded", READ), _acl(TOPIC, "guarded", WRITE),
                _acl(CLUSTER, "kafka-cluster", ALTER)]})
            assert [r.error_code for r in made.results] == [0, 0, 0]
        yield broker
    finally:
        broker.stop()


def test_the_internal_client_id_gets_no_acl_exemption(guarded: BrokerProcess,
                                                      cluster_secret_file: Path) -> None:
    with RawClient(guarded.bootstrap, client_id=IMPOSTOR) as raw:
        assert _produce(raw, "guarded") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        assert _fetch(raw, "guarded", 0).error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        removed = raw.request("DeleteAcls", 3, {"filters": [{
            "resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
            "principal_filter": None, "host_filter": None, "operation": 1,
            "permission_type": 1}]})
        assert removed.filter_results[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    with RawClient(guarded.bootstrap) as node:
        key = node_identity.derive_key(cluster_secret_file.read_text().strip())
        assert _sasl(node, 2, key) == 0
        listed = node.request("DescribeAcls", 3, {
            "resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
            "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1})
        assert sum(len(r.acls) for r in listed.resources) == 3


def test_a_wrong_proof_is_refused_and_the_right_one_makes_a_node(
        guarded: BrokerProcess, cluster_secret_file: Path) -> None:
    with RawClient(guarded.bootstrap, client_id=IMPOSTOR) as raw:
        refused = raw.request("SaslHandshake", 1, {"mechanism": "PLAIN"})
        assert refused.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    with RawClient(guarded.bootstrap, client_id=IMPOSTOR) as raw:
        wrong = node_identity.derive_key("a-guess-at-the-cluster-secret")
        assert _sasl(raw, 2, wrong) == ErrorCode.SASL_AUTHENTICATION_FAILED
        # A refused exchange ends the connection, as a failed login does in Kafka: it
        # cannot be continued or restarted, nor the connection used for anything else.
        raw.sock.settimeout(5)
        assert raw.sock.recv(1) == b""
    with RawClient(guarded.bootstrap, client_id=IMPOSTOR) as raw:
        assert _produce(raw, "guarded") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    with RawClient(guarded.bootstrap) as raw:
        right = node_identity.derive_key(cluster_secret_file.read_text().strip())
        assert _sasl(raw, 2, right) == 0
        assert _produce(raw, "guarded") == 0  # a node acts as the inter-broker principal


def test_a_claimed_replica_id_moves_no_high_watermark(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        with RawClient(cluster.nodes[1].bootstrap) as raw:
            created = raw.request("CreateTopics", 7, {"topics": [{
                "name": "held", "num_partitions": 1, "replication_factor": 3,
                "configs": [{"name": "min.insync.replicas", "value": "2"}]}],
                "timeout_ms": 10000})
            assert created.topics[0].error_code == 0, created
        deadline = time.monotonic() + 30
        while True:
            with RawClient(cluster.nodes[1].bootstrap) as raw:
                part = raw.request("Metadata", 12, {"topics": [{"name": "held"}]}).topics[0].partitions[0]
            if len(part.isr_nodes) == 3:
                break
            assert time.monotonic() < deadline, "three in-sync replicas"
            time.sleep(0.2)
        leader = cluster.nodes[part.leader_id]
        followers = [n for n in part.replica_nodes if n != part.leader_id]
        with RawClient(leader.bootstrap) as raw:
            assert _produce(raw, "held", acks=-1) == 0
            assert _latest(raw, "held") == 1
        # Both followers stop; only the impostor "fetches" for them, far ahead.
        frozen = [cluster.nodes[n].process for n in followers]
        for proc in frozen:
            assert proc is not None
            os.kill(proc.pid, signal.SIGSTOP)
        try:
            with RawClient(leader.bootstrap, client_id=IMPOSTOR) as impostor, \
                    RawClient(leader.bootstrap) as producer:
                for follower in followers:
                    _fetch(impostor, "held", 1_000_000, replica_id=follower)
                started = time.monotonic()
                error = _produce(producer, "held", acks=-1, timeout_ms=1500)
                for follower in followers:
                    _fetch(impostor, "held", 1_000_000, replica_id=follower)
                assert error != 0, "acknowledged acks=all with both followers stopped"
                assert time.monotonic() - started >= 1.0
                assert _latest(producer, "held") == 1
        finally:
            for proc in frozen:
                assert proc is not None
                os.kill(proc.pid, signal.SIGCONT)
