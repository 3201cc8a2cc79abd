"""SCRAM users administered through confluent-kafka's AdminClient (librdkafka):
AlterUserScramCredentials and DescribeUserScramCredentials against a broker process."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat

SHA256, SHA512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminClient]:
    process = BrokerProcess(Path(tmp_path_factory.mktemp("scram-ck")) / "data").start()
    try:
        yield AdminClient({"bootstrap.servers": process.bootstrap})
    finally:
        process.stop()


def error_of(future: Future[Any]) -> int:
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return 0


def upsert(user: str, mechanism: ScramMechanism = SHA256, iterations: int = 4096) -> UserScramCredentialUpsertion:
    return UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, iterations), b"pa55word")


def alter(admin: AdminClient, *alterations: Any) -> dict[str, int]:
    return {user: error_of(f) for user, f in admin.alter_user_scram_credentials(list(alterations)).items()}


def credentials(admin: AdminClient, user: str) -> list[tuple[ScramMechanism, int]]:
    description = admin.describe_user_scram_credentials([user])[user].result(timeout=15)
    return sorted(((i.mechanism, i.iterations) for i in description.scram_credential_infos),
                  key=lambda pair: pair[0].value)


def test_upsert_describe_and_delete(admin: AdminClient) -> None:
    assert alter(admin, upsert("alice", SHA256, 8192), upsert("bob", SHA512)) == {"alice": 0, "bob": 0}
    assert alter(admin, upsert("alice", SHA512, 4096)) == {"alice": 0}
    assert credentials(admin, "alice") == [(SHA256, 8192), (SHA512, 4096)]
    everyone = admin.describe_user_scram_credentials().result(timeout=15)
    assert {"alice", "bob"} <= set(everyone)
    assert [(i.mechanism, i.iterations) for i in everyone["bob"].scram_credential_infos] == [(SHA512, 4096)]
    assert alter(admin, UserScramCredentialDeletion("alice", SHA256)) == {"alice": 0}
    assert credentials(admin, "alice") == [(SHA512, 4096)]
    assert alter(admin, UserScramCredentialDeletion("alice", SHA512)) == {"alice": 0}
    gone = admin.describe_user_scram_credentials(["alice"])["alice"]
    assert error_of(gone) == KafkaError.RESOURCE_NOT_FOUND


def test_refusals_reach_the_client_per_user(admin: AdminClient) -> None:
    # librdkafka itself refuses an UNKNOWN mechanism and an empty user name before
    # sending; tests/handlers covers the broker's answers to those.
    results = alter(admin,
                    upsert("few", iterations=4095),
                    upsert("many", iterations=16385),
                    UserScramCredentialDeletion("ghost", SHA256),
                    upsert("fine"))
    assert results == {
        "few": KafkaError.UNACCEPTABLE_CREDENTIAL,
        "many": KafkaError.UNACCEPTABLE_CREDENTIAL,
        "ghost": KafkaError.RESOURCE_NOT_FOUND,
        "fine": 0,
    }
    assert credentials(admin, "fine") == [(SHA256, 4096)]
    assert error_of(admin.describe_user_scram_credentials(["few"])["few"]) == KafkaError.RESOURCE_NOT_FOUND


def test_a_user_altered_twice_in_one_request_is_a_duplicate(admin: AdminClient) -> None:
    assert alter(admin, upsert("carol")) == {"carol": 0}
    results = alter(admin, UserScramCredentialDeletion("carol", SHA256), upsert("carol", SHA512))
    assert results == {"carol": KafkaError.DUPLICATE_RESOURCE}
    assert credentials(admin, "carol") == [(SHA256, 4096)]
