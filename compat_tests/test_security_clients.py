"""Real clients over SSL, SASL_PLAINTEXT and SASL_SSL with each mechanism they support:
produce, consume in a group with committed offsets, and admin. Then the refusals: a
wrong password, an unknown user, an expired token and an untrusted certificate each end
in a clean authentication error, with nothing served."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import kafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic as ConfluentNewTopic

from compat_tests.secure_broker import AsyncTokenProvider, SecureBroker, start_secure_broker

pytestmark = pytest.mark.compat

COUNT = 5
KCAT = shutil.which("kcat")

# (protocol, mechanism) pairs each client is run with. kafka-python 2.x/3.x and aiokafka
# speak PLAIN, SCRAM and OAUTHBEARER; librdkafka all four.
SASL_CASES = [
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ("SASL_PLAINTEXT", "OAUTHBEARER"),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "PLAIN"),
]
CASES = [*SASL_CASES, ("SSL", None)]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path_factory.mktemp("secure"))
    try:
        yield broker
    finally:
        broker.process.stop()


def _case_id(case: tuple[str, str | None]) -> str:
    return "-".join(part for part in case if part)


def _values(topic: str) -> list[bytes]:
    return [f"{topic}-{i}".encode() for i in range(COUNT)]


# --- confluent-kafka ---------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_confluent_kafka(secure: SecureBroker, case: tuple[str, str | None]) -> None:
    protocol, mechanism = case
    conf = secure.confluent(protocol, mechanism, cert_user="alice")
    topic = f"sec-ck-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(conf)
    for future in admin.create_topics([ConfluentNewTopic(topic, 1, 1)]).values():
        assert future.result(timeout=20) is None
    brokers = admin.list_topics(timeout=10).brokers
    # Metadata names the address of the listener the client came in on.
    assert [(b.host, b.port) for b in brokers.values()] == [("127.0.0.1", secure.ports[protocol])]
    producer = confluent_kafka.Producer(conf)
    errors: list[Any] = []
    for value in _values(topic):
        producer.produce(topic, value, on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(20) == 0 and not errors, errors
    group = f"g-{topic}"
    consumer = confluent_kafka.Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < COUNT and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            got.append(msg.value())
    consumer.commit(asynchronous=False)
    committed = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
    consumer.close()
    assert got == _values(topic)
    assert committed[0].offset == COUNT


# --- kafka-python ------------------------------------------------------------------------

KAFKA_PYTHON_CASES = [c for c in CASES if c[1] != "OAUTHBEARER"] + [("SASL_PLAINTEXT", "OAUTHBEARER")]


@pytest.mark.parametrize("case", KAFKA_PYTHON_CASES, ids=_case_id)
def test_kafka_python(secure: SecureBroker, case: tuple[str, str | None]) -> None:
    protocol, mechanism = case
    conf = secure.kafka_python(protocol, mechanism, cert_user="alice")
    topic = f"sec-kp-{uuid.uuid4().hex[:8]}"
    admin = kafka.KafkaAdminClient(**conf)
    admin.create_topics([kafka.admin.NewTopic(topic, 1, 1)])
    assert topic in admin.list_topics()
    admin.close()
    producer = kafka.KafkaProducer(**conf, acks="all")
    for future in [producer.send(topic, value) for value in _values(topic)]:
        future.get(20)
    producer.close(10)
    group = f"g-{topic}"
    consumer = kafka.KafkaConsumer(topic, **conf, group_id=group, auto_offset_reset="earliest",
                                   enable_auto_commit=False)
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < COUNT and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    consumer.commit()
    committed = consumer.committed(kafka.TopicPartition(topic, 0))
    consumer.close()
    assert got == _values(topic)
    assert committed == COUNT


# --- aiokafka ------------------------------------------------------------------------------


def _aiokafka_conf(secure: SecureBroker, protocol: str, mechanism: str | None) -> dict[str, Any]:
    conf = secure.kafka_python(protocol, mechanism, cert_user="alice")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        conf.pop(name, None)
    if "SSL" in protocol:
        context = ssl.create_default_context(cafile=str(secure.tls.ca_cert))
        cert, key = secure.tls.client_cert("alice")
        context.load_cert_chain(str(cert), str(key))
        conf["ssl_context"] = context
    if mechanism == "OAUTHBEARER":
        conf["sasl_oauth_token_provider"] = AsyncTokenProvider(secure.token("alice"))
    return conf


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_aiokafka(secure: SecureBroker, case: tuple[str, str | None]) -> None:
    protocol, mechanism = case
    conf = _aiokafka_conf(secure, protocol, mechanism)
    topic = f"sec-aio-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[list[bytes], int | None]:
        admin = AIOKafkaAdminClient(**conf)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(**conf, acks="all")
        await producer.start()
        try:
            for value in _values(topic):
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, **conf, group_id=f"g-{topic}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got: list[bytes] = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < COUNT and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(r.value for r in records)
            await consumer.commit()
            from aiokafka.structs import TopicPartition

            committed = await consumer.committed(TopicPartition(topic, 0))
        finally:
            await consumer.stop()
        return got, committed

    got, committed = asyncio.run(run())
    assert got == _values(topic)
    assert committed == COUNT


# --- kcat ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [("SASL_SSL", "SCRAM-SHA-256"), ("SASL_PLAINTEXT", "PLAIN"),
                                  ("SSL", None)], ids=_case_id)
def test_kcat(secure: SecureBroker, case: tuple[str, str | None]) -> None:
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat); ./dev test installs it as root")
    protocol, mechanism = case
    args = secure.kcat_args(protocol, mechanism, cert_user="alice")
    topic = f"sec-kcat-{uuid.uuid4().hex[:8]}"
    lines = [v.decode() for v in _values(topic)]
    subprocess.run([KCAT, *args, "-P", "-t", topic], input="\n".join(lines) + "\n", text=True,
                   check=True, timeout=30, capture_output=True)
    out = subprocess.run([KCAT, *args, "-C", "-t", topic, "-o", "beginning", "-e"], text=True,
                         check=True, timeout=30, capture_output=True).stdout
    assert out.split() == lines


# --- refusals ------------------------------------------------------------------------------


def _confluent_auth_error(conf: dict[str, Any]) -> str:
    """What a librdkafka producer reports when it cannot log in: the error of its
    error_cb, within 15 s."""
    seen: list[confluent_kafka.KafkaError] = []
    delivered: list[confluent_kafka.KafkaError | None] = []
    producer = confluent_kafka.Producer({**conf, "error_cb": seen.append,
                                         "message.timeout.ms": 5000})
    producer.produce("never-written", b"x", on_delivery=lambda err, _m: delivered.append(err))
    deadline = time.monotonic() + 15
    while not seen and time.monotonic() < deadline:
        producer.poll(0.2)
    producer.flush(6)
    assert seen, "no error reported"
    # Nothing was served: the record was never written.
    assert delivered and delivered[0] is not None, delivered
    return " | ".join(f"{e.name()}: {e.str()}" for e in seen)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_wrong_password_is_an_authentication_error(secure: SecureBroker, mechanism: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    reported = _confluent_auth_error(
        secure.confluent("SASL_PLAINTEXT", mechanism, "alice", password="not-alices"))
    assert "_AUTHENTICATION" in reported and "Authentication failed" in reported, reported
    # kafka-python retries the bootstrap until its timeout, logging each refusal.
    caplog.clear()
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaProducer(**secure.kafka_python("SASL_PLAINTEXT", mechanism, "alice",
                                                  password="not-alices"),
                            bootstrap_timeout_ms=3000)
    assert "Authentication failed" in caplog.text, caplog.text[-2000:]


def test_an_unknown_user_is_refused_like_a_wrong_password(secure: SecureBroker) -> None:
    for mechanism in ("PLAIN", "SCRAM-SHA-256"):
        conf = secure.confluent("SASL_PLAINTEXT", mechanism, "alice")
        conf["sasl.username"] = "mallory"
        reported = _confluent_auth_error(conf)
        assert "_AUTHENTICATION" in reported, reported
    assert "never-written" not in secure.log_text()


def test_an_expired_token_is_refused(secure: SecureBroker) -> None:
    conf = secure.confluent("SASL_PLAINTEXT", "OAUTHBEARER")
    expired = secure.token("alice", lifetime_s=-120)  # past the 30 s of allowed skew
    conf["oauth_cb"] = lambda _config: (expired, time.time() + 3600)
    reported = _confluent_auth_error(conf)
    assert "_AUTHENTICATION" in reported, reported


def test_an_untrusted_client_certificate_is_refused(secure: SecureBroker, tmp_path: Path) -> None:
    conf = secure.confluent("SSL")
    cert, key = secure.tls.untrusted_client_cert("mallory")
    conf["ssl.certificate.location"], conf["ssl.key.location"] = str(cert), str(key)
    # With TLS 1.3 the server checks the client certificate after the client has sent
    # its Finished, so librdkafka sees the connection close rather than an alert.
    reported = _confluent_auth_error(conf)
    assert any(s in reported for s in ("SSL", "_TRANSPORT", "_ALL_BROKERS_DOWN")), reported


def test_a_client_that_does_not_trust_the_server_stops(secure: SecureBroker) -> None:
    conf = secure.confluent("SASL_SSL", "SCRAM-SHA-256")
    conf["ssl.ca.location"] = str(secure.tls.untrusted_ca_cert)
    reported = _confluent_auth_error(conf)
    assert "certificate verify failed" in reported or "SSL" in reported, reported


def _delivery_error(conf: dict[str, Any], topic: str) -> confluent_kafka.KafkaError | None:
    errors: list[confluent_kafka.KafkaError | None] = []
    producer = confluent_kafka.Producer({**conf, "message.timeout.ms": 10000, "retries": 0})
    producer.produce(topic, b"v", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(15)
    assert len(errors) == 1
    return errors[0]


def test_a_client_certificate_names_the_principal(secure: SecureBroker) -> None:
    """On the SSL listener, the certificate CN=alice is User:alice
    (ssl_principal_mapping_rules): an ACL that lets User:alice, and nobody else, write
    the topic lets her certificate in and keeps bob's out."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = AdminClient(secure.confluent("SASL_PLAINTEXT", "SCRAM-SHA-256", "admin"))
    topic = f"cert-{uuid.uuid4().hex[:6]}"
    for future in admin.create_topics([ConfluentNewTopic(topic, 1, 1)]).values():
        assert future.result(timeout=20) is None
    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        assert future.result(timeout=20) is None
    try:
        assert _delivery_error(secure.confluent("SSL", cert_user="alice"), topic) is None
        refused = _delivery_error(secure.confluent("SSL", cert_user="bob"), topic)
        assert refused is not None and refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    finally:
        admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                            None, None, AclOperation.ANY, AclPermissionType.ANY)])
