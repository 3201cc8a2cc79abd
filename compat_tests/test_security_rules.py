"""The rules of a SASL listener, byte by byte, and ACLs keyed on authenticated users.

- Before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are
  served; anything else closes the connection, as does a frame over 512 KiB.
- A failed login is answered with SASL_AUTHENTICATION_FAILED and the connection closes
  soon after; an unknown mechanism gets UNSUPPORTED_SASL_MECHANISM and a close.
- SaslHandshake v0 (bare tokens, as old clients send) authenticates too.
- Re-authentication (KIP-368): session_lifetime_ms is granted, the same user may log in
  again on the connection, another user may not, and a session left to expire ends.
- User alice may write topic T and user bob may only read it.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509

from broker.protocol.errors import ErrorCode
from compat_tests.cluster import Cluster
from compat_tests.harness import free_port
from compat_tests.raw_client import RawClient
from compat_tests.secure_broker import USERS, SecureBroker, start_secure_broker
from tests.tls_material import make_tls_material

pytestmark = pytest.mark.compat

REAUTH_MS = 3000


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path_factory.mktemp("rules"), super_users=["User:admin"],
                                 connections_max_reauth_ms=REAUTH_MS)
    try:
        yield broker
    finally:
        broker.process.stop()


def _closed(raw: RawClient, within: float = 5.0) -> bool:
    """Whether the broker closes the connection within `within` seconds."""
    raw.sock.settimeout(within)
    try:
        return raw.sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _plain(raw: RawClient, user: str, password: str, version: int = 2) -> object:
    assert raw.request("SaslHandshake", 1, {"mechanism": "PLAIN"}).error_code == 0
    token = b"\0" + user.encode() + b"\0" + password.encode()
    return raw.request("SaslAuthenticate", version, {"auth_bytes": token})


def test_a_request_before_authentication_closes_the_connection(secure: SecureBroker) -> None:
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        versions = raw.request("ApiVersions", 3, {"client_software_name": "raw",
                                                  "client_software_version": "1"})
        assert versions.error_code == 0
        with pytest.raises(ConnectionError):
            raw.request("Metadata", 12, {"topics": None, "allow_auto_topic_creation": False,
                                         "include_topic_authorized_operations": False})
    assert "api key 3 sent before SASL authentication" in secure.log_text()


def test_an_oversized_frame_before_authentication_closes_the_connection(secure: SecureBroker) -> None:
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        raw.send_frame(struct.pack(">i", 600 * 1024))
        assert _closed(raw)
    assert "(not authenticated yet)" in secure.log_text()


def test_a_failed_login_is_answered_then_the_connection_closes(secure: SecureBroker) -> None:
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        answer = _plain(raw, "alice", "wrong")
        assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert answer.error_message == "Authentication failed: Invalid username or password"
        started = time.monotonic()
        assert _closed(raw)
        # connection_failed_authentication_delay_ms, 100 ms by default
        assert 0.05 <= time.monotonic() - started < 3
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        answer = raw.request("SaslHandshake", 1, {"mechanism": "GSSAPI"})
        assert answer.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert "SCRAM-SHA-512" in answer.mechanisms
        assert _closed(raw)


def test_a_handshake_v0_login_with_bare_tokens(secure: SecureBroker) -> None:
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        assert raw.request("SaslHandshake", 0, {"mechanism": "PLAIN"}).error_code == 0
        token = b"\0alice\0" + USERS["alice"].encode()
        raw.send_frame(struct.pack(">i", len(token)) + token)
        assert raw.read_frame() == b""  # PLAIN answers with an empty token
        topics = raw.request("Metadata", 12, {"topics": None, "allow_auto_topic_creation": False,
                                              "include_topic_authorized_operations": False})
        assert [b.port for b in topics.brokers] == [secure.ports["SASL_PLAINTEXT"]]


def test_reauthentication_keeps_the_user_and_an_expired_session_ends(secure: SecureBroker) -> None:
    metadata = {"topics": None, "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False}
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        answer = _plain(raw, "alice", USERS["alice"])
        assert answer.error_code == 0
        assert 0 < answer.session_lifetime_ms <= REAUTH_MS
        assert _plain(raw, "alice", USERS["alice"]).error_code == 0  # re-authenticated
        assert raw.request("Metadata", 12, metadata).throttle_time_ms == 0
        changed = _plain(raw, "bob", USERS["bob"])
        assert changed.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert "Cannot change principals" in changed.error_message
        assert _closed(raw)
    with RawClient(secure.bootstrap("SASL_PLAINTEXT")) as raw:
        assert _plain(raw, "alice", USERS["alice"]).error_code == 0
        time.sleep(REAUTH_MS / 1000 + 0.5)
        with pytest.raises(ConnectionError):
            raw.request("Metadata", 12, metadata)
    assert "its SASL session expired" in secure.log_text()


def test_alice_may_write_and_bob_may_only_read(secure: SecureBroker) -> None:
    topic = f"acl-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(secure.confluent("SASL_PLAINTEXT", "SCRAM-SHA-512", "admin"))
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        assert future.result(timeout=20) is None
    grants = [("User:alice", AclOperation.WRITE), ("User:bob", AclOperation.READ)]
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, who, "*",
                           operation, AclPermissionType.ALLOW) for who, operation in grants]
    for future in admin.create_acls(bindings).values():
        assert future.result(timeout=20) is None

    def write(user: str) -> confluent_kafka.KafkaError | None:
        errors: list[confluent_kafka.KafkaError | None] = []
        producer = confluent_kafka.Producer({
            **secure.confluent("SASL_PLAINTEXT", "SCRAM-SHA-256", user),
            "message.timeout.ms": 10000, "retries": 0})
        producer.produce(topic, f"by {user}".encode(), on_delivery=lambda e, _m: errors.append(e))
        producer.flush(15)
        return errors[0]

    def read(user: str) -> list[bytes] | confluent_kafka.KafkaError:
        consumer = confluent_kafka.Consumer({
            **secure.confluent("SASL_PLAINTEXT", "SCRAM-SHA-256", user),
            "group.id": f"{user}-{topic}", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        try:
            while not got and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error() is not None:
                    return msg.error()
                got.append(msg.value())
        finally:
            consumer.close()
        return got

    assert write("alice") is None
    refused = write("bob")
    assert refused is not None and refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert read("bob") == [b"by alice"]
    denied = read("alice")
    assert isinstance(denied, confluent_kafka.KafkaError), denied
    assert denied.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_three_node_cluster_with_every_listener_secured(tmp_path: Path) -> None:
    """Clients on SASL_SSL only, nodes on SSL between them (each proves it is a node
    with WALRUS-NODE inside TLS, verifying the other's certificate): replicated topics
    take acks=all writes and a group reads them back through every node."""
    tls = make_tls_material(tmp_path / "tls")
    users = tmp_path / "users.txt"
    users.write_text("".join(f"{u}:SCRAM-SHA-512:{p}\n" for u, p in USERS.items()))
    users.chmod(0o600)
    cluster = Cluster(tmp_path, 3)
    internal = {n: free_port() for n in cluster.nodes}
    for n, node in cluster.nodes.items():
        settings = {
            "listeners": f"CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{internal[n]}",
            "listener_security_protocol_map": "CLIENT:SASL_SSL,INTERNAL:SSL",
            "inter_broker_listener_name": "INTERNAL",
            "sasl_enabled_mechanisms": "SCRAM-SHA-512",
            "scram_credentials_file": str(users),
            "ssl_certfile": str(tls.server_cert), "ssl_keyfile": str(tls.server_key),
            "ssl_cafile": str(tls.ca_cert), "ssl_client_auth": "required",
            "group_initial_rebalance_delay_ms": 0,
        }
        toml = tmp_path / f"node{n}.toml"
        toml.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
        node.extra_args += ["--config", str(toml)]
    with cluster:
        client = {"bootstrap.servers": cluster.bootstrap, "security.protocol": "sasl_ssl",
                  "ssl.ca.location": str(tls.ca_cert), "sasl.mechanism": "SCRAM-SHA-512",
                  "sasl.username": "alice", "sasl.password": USERS["alice"]}
        # required client auth: clients show a certificate too
        cert, key = tls.client_cert("alice")
        client.update({"ssl.certificate.location": str(cert), "ssl.key.location": str(key)})
        topic = f"secured-{uuid.uuid4().hex[:6]}"
        admin = AdminClient(client)
        for future in admin.create_topics([NewTopic(topic, 3, 3)]).values():
            assert future.result(timeout=30) is None
        brokers = admin.list_topics(timeout=10).brokers
        assert sorted(b.port for b in brokers.values()) == sorted(n.port for n in cluster.nodes.values())
        producer = confluent_kafka.Producer({**client, "acks": "all", "enable.idempotence": True})
        errors: list[object] = []
        values = [f"v{i}".encode() for i in range(300)]
        for i, value in enumerate(values):
            producer.produce(topic, value, partition=i % 3,
                             on_delivery=lambda e, _m: e is not None and errors.append(e))
        assert producer.flush(60) == 0 and not errors, errors[:3]
        consumer = confluent_kafka.Consumer({**client, "group.id": f"g-{topic}",
                                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(got) < len(values) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg.value())
        consumer.close()
        assert sorted(got) == sorted(values)
        # Replication ran over the SSL listener, node to node.
        for node in cluster.nodes.values():
            assert "authentication failed" not in node.log_path.read_text(errors="replace")


def test_a_replaced_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    broker = start_secure_broker(tmp_path / "reload", ssl_reload_check_interval_ms=300)
    try:
        def served_serial() -> int:
            context = ssl.create_default_context(cafile=str(broker.tls.ca_cert))
            with socket.create_connection(("127.0.0.1", broker.ports["SSL"]), 5) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number

        first = served_serial()
        assert first == broker.tls.server.serial
        # The operator's renewal: new files written over the old ones.
        renewed = broker.tls.ca.issue_server("renewed")
        os.replace(renewed.key, broker.tls.server_key)
        os.replace(renewed.cert, broker.tls.server_cert)
        deadline = time.monotonic() + 10
        while served_serial() == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_serial() == renewed.serial
        assert "TLS certificate reloaded" in broker.log_text()
    finally:
        broker.process.stop()


def test_librdkafka_reauthenticates_before_its_session_ends(secure: SecureBroker) -> None:
    """librdkafka (2.2 and later) re-authenticates within session_lifetime_ms
    (KIP-368): a producer writing for three lifetimes loses no connection to expiry."""
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    before = secure.log_text().count("its SASL session expired")
    producer = confluent_kafka.Producer(
        {**secure.confluent("SASL_SSL", "SCRAM-SHA-256", "alice"), "linger.ms": 0})
    errors: list[object] = []
    sent = 0
    deadline = time.monotonic() + 3 * REAUTH_MS / 1000
    while time.monotonic() < deadline:
        producer.produce(topic, f"r{sent}".encode(),
                         on_delivery=lambda e, _m: e is not None and errors.append(e))
        sent += 1
        producer.poll(0.05)
    assert producer.flush(15) == 0 and not errors, errors[:3]
    assert sent > 50
    assert secure.log_text().count("its SASL session expired") == before


def test_a_closed_cluster_lets_super_users_in_and_others_only_by_acl(tmp_path: Path) -> None:
    broker = start_secure_broker(tmp_path / "closed", super_users=["User:admin"],
                                 allow_everyone_if_no_acl_found=False)
    try:
        def create(user: str, topic: str) -> confluent_kafka.KafkaError | None:
            admin = AdminClient(broker.confluent("SASL_PLAINTEXT", "SCRAM-SHA-256", user))
            try:
                admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=20)
            except confluent_kafka.KafkaException as exc:
                return exc.args[0]
            return None

        assert create("admin", "by-admin") is None
        refused = create("alice", "by-alice")
        assert refused is not None
        assert refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
        admin = AdminClient(broker.confluent("SASL_PLAINTEXT", "SCRAM-SHA-256", "admin"))
        grant = AclBinding(ResourceType.TOPIC, "by-alice", ResourcePatternType.LITERAL,
                           "User:alice", "*", AclOperation.CREATE, AclPermissionType.ALLOW)
        for future in admin.create_acls([grant]).values():
            assert future.result(timeout=20) is None
        assert create("alice", "by-alice") is None
        # An anonymous client on the PLAINTEXT listener is nobody the ACLs allow.
        plain = AdminClient(broker.confluent("PLAINTEXT"))
        with pytest.raises(confluent_kafka.KafkaException):
            plain.create_topics([NewTopic("by-anonymous", 1, 1)])["by-anonymous"].result(timeout=20)
    finally:
        broker.process.stop()
