"""DescribeUserScramCredentials and AlterUserScramCredentials against a real in-process
node (Raft of one), through the codec both ways: Kafka's answers for each case, and a
stored credential that a SCRAM login then accepts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from node_runner import NodeRunner
from scram_client import ScramClient

from broker.protocol.errors import ErrorCode
from broker.security import scram
from broker.security.acl import AclOperation, AclPermission, PatternType, ResourceType

pytestmark = pytest.mark.unit

SHA256, SHA512 = 1, 2
NAMES = {SHA256: "SCRAM-SHA-256", SHA512: "SCRAM-SHA-512"}
# A connection that proved it is node 2 of the cluster: Kafka's inter-broker principal.
PEER = 2


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path_factory.mktemp("scram-node") / "data")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(autouse=True)
def no_credentials_left(runner: NodeRunner) -> Iterator[None]:
    yield
    with runner.node.metadata() as state:
        stored = list(state.scram_credentials())
    codes = {name: code for code, name in NAMES.items()}
    alter(runner, deletions=[deletion(user, codes[mech]) for user, mech in stored], as_node=PEER)
    runner.call("DeleteAcls", 3, {"filters": [{
        "resource_type_filter": ResourceType.ANY, "resource_name_filter": None,
        "pattern_type_filter": PatternType.ANY, "principal_filter": None, "host_filter": None,
        "operation": AclOperation.ANY, "permission_type": AclPermission.ANY}]}, as_node=PEER)


def upsertion(user: str, mechanism: int = SHA256, password: str = "pw", iterations: int = 4096,
              salt: bytes = b"some-salt", salted: bytes | None = None) -> dict[str, Any]:
    if salted is None:
        salted = scram.salted_password(scram.hash_name(NAMES[mechanism]), password.encode(), salt, iterations)
    return {"name": user, "mechanism": mechanism, "iterations": iterations, "salt": salt,
            "salted_password": salted}


def deletion(user: str, mechanism: int = SHA256) -> dict[str, Any]:
    return {"name": user, "mechanism": mechanism}


def alter(runner: NodeRunner, *, upsertions: list[dict[str, Any]] | None = None,
          deletions: list[dict[str, Any]] | None = None, as_node: int | None = None) -> dict[str, tuple[int, str | None]]:
    body = {"upsertions": upsertions or [], "deletions": deletions or []}
    answer = runner.call("AlterUserScramCredentials", 0, body, as_node=as_node)
    results = {r.user: (r.error_code, r.error_message) for r in answer.results}
    assert len(results) == len(answer.results), "one result per user"
    return results


def codes(results: dict[str, tuple[int, str | None]]) -> dict[str, int]:
    return {user: code for user, (code, _) in results.items()}


def describe(runner: NodeRunner, *users: str, all_users: bool = False) -> Any:
    body = {"users": None if all_users else [{"name": u} for u in users]}
    return runner.call("DescribeUserScramCredentials", 0, body)


def described(answer: Any) -> dict[str, Any]:
    assert answer.error_code == 0
    return {r.user: (r.error_code, sorted((i.mechanism, i.iterations) for i in r.credential_infos))
            for r in answer.results}


def test_upsert_describe_and_log_in_with_the_password(runner: NodeRunner) -> None:
    assert codes(alter(runner, upsertions=[upsertion("alice", SHA256, "secret", 8192),
                                           upsertion("bob", SHA512)])) == {"alice": 0, "bob": 0}
    assert described(describe(runner, "alice")) == {"alice": (0, [(SHA256, 8192)])}
    assert described(describe(runner, all_users=True)) == {"alice": (0, [(SHA256, 8192)]),
                                                           "bob": (0, [(SHA512, 4096)])}
    # an empty list also means every user, as in Kafka
    assert set(described(describe(runner))) == {"alice", "bob"}
    with runner.node.metadata() as state:
        server = scram.ScramServer("SCRAM-SHA-256", lambda user: state.scram_credential(user, "SCRAM-SHA-256"))
    client = ScramClient("SCRAM-SHA-256", "alice", "secret")
    assert client.server_verified(server.evaluate(client.final(server.evaluate(client.first()))))


def test_the_salted_password_is_not_stored(runner: NodeRunner) -> None:
    entry = upsertion("carol", SHA256, "pw")
    alter(runner, upsertions=[entry])
    snapshot = runner.node.state.to_snapshot()
    assert entry["salted_password"].hex().encode() not in snapshot
    assert b"carol" in snapshot


def test_upsert_replaces_one_mechanism_and_delete_removes_one(runner: NodeRunner) -> None:
    alter(runner, upsertions=[upsertion("dave", SHA256)])
    alter(runner, upsertions=[upsertion("eve", SHA512)])
    assert codes(alter(runner, upsertions=[upsertion("dave", SHA512, iterations=5000)])) == {"dave": 0}
    assert codes(alter(runner, upsertions=[upsertion("dave", SHA256, iterations=6000)])) == {"dave": 0}
    assert described(describe(runner, "dave")) == {"dave": (0, [(SHA256, 6000), (SHA512, 5000)])}
    assert codes(alter(runner, deletions=[deletion("dave", SHA256)])) == {"dave": 0}
    assert described(describe(runner, "dave", "eve")) == {"dave": (0, [(SHA512, 5000)]), "eve": (0, [(SHA512, 4096)])}


def test_deleting_or_describing_what_does_not_exist_is_resource_not_found(runner: NodeRunner) -> None:
    alter(runner, upsertions=[upsertion("frank", SHA256)])
    results = alter(runner, deletions=[deletion("frank", SHA512), deletion("ghost")])
    assert codes(results) == {"frank": ErrorCode.RESOURCE_NOT_FOUND, "ghost": ErrorCode.RESOURCE_NOT_FOUND}
    assert results["ghost"][1] == "Attempt to delete a user credential that does not exist"
    answer = describe(runner, "frank", "ghost")
    assert described(answer) == {"frank": (0, [(SHA256, 4096)]), "ghost": (ErrorCode.RESOURCE_NOT_FOUND, [])}
    assert answer.results[1].error_message == "Attempt to describe a user credential that does not exist: ghost"


def test_a_user_described_twice_is_a_duplicate(runner: NodeRunner) -> None:
    alter(runner, upsertions=[upsertion("gina")])
    answer = describe(runner, "gina", "ghost", "gina")
    assert described(answer) == {"gina": (ErrorCode.DUPLICATE_RESOURCE, []), "ghost": (ErrorCode.RESOURCE_NOT_FOUND, [])}
    assert [r.user for r in answer.results] == ["gina", "ghost"]


@pytest.mark.parametrize("entry, code, message", [
    (upsertion("u", salted=bytes(32)) | {"mechanism": 0}, ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
    (upsertion("u", salted=bytes(32)) | {"mechanism": 3}, ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
    (upsertion("", salted=bytes(32)), ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
    (upsertion("u", salted=bytes(32), iterations=4095), ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
    (upsertion("u", salted=bytes(32), iterations=16385), ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
    (upsertion("u", salted=bytes(31)), ErrorCode.UNACCEPTABLE_CREDENTIAL, "salted password is 32 bytes"),
    (upsertion("u", SHA512, salted=bytes(32)), ErrorCode.UNACCEPTABLE_CREDENTIAL, "salted password is 64 bytes"),
    (upsertion("u", salted=b""), ErrorCode.UNACCEPTABLE_CREDENTIAL, "salted password"),
    (upsertion("u", salt=b"", salted=bytes(32)), ErrorCode.UNACCEPTABLE_CREDENTIAL, "salt must not be empty"),
])
def test_unacceptable_upsertions(runner: NodeRunner, entry: dict[str, Any], code: ErrorCode, message: str) -> None:
    results = alter(runner, upsertions=[entry, upsertion("ok-user")])
    assert results[entry["name"]][0] == code and message in (results[entry["name"]][1] or "")
    assert results["ok-user"] == (0, None)  # the rest of the request still applies
    with runner.node.metadata() as state:
        assert [user for user, _ in state.scram_credentials()] == ["ok-user"]


@pytest.mark.parametrize("entry, code", [
    (deletion("u", 0), ErrorCode.UNSUPPORTED_SASL_MECHANISM),
    (deletion("u", -1), ErrorCode.UNSUPPORTED_SASL_MECHANISM),
    (deletion("", SHA256), ErrorCode.UNACCEPTABLE_CREDENTIAL),
])
def test_unacceptable_deletions(runner: NodeRunner, entry: dict[str, Any], code: ErrorCode) -> None:
    assert codes(alter(runner, deletions=[entry])) == {entry["name"]: code}


def test_a_user_altered_twice_in_one_request_is_a_duplicate_and_unchanged(runner: NodeRunner) -> None:
    alter(runner, upsertions=[upsertion("hank", SHA256), upsertion("ivy", SHA256)])
    results = alter(runner, deletions=[deletion("hank", SHA256)],
                    upsertions=[upsertion("hank", SHA512), upsertion("ivy", SHA512), upsertion("ivy", SHA256),
                                upsertion("ivy", SHA512), upsertion("jo", SHA256)])
    assert codes(results) == {"hank": ErrorCode.DUPLICATE_RESOURCE, "ivy": ErrorCode.DUPLICATE_RESOURCE, "jo": 0}
    assert results["hank"][1] == "A user credential cannot be altered twice in the same request"
    assert described(describe(runner, all_users=True)) == {
        "hank": (0, [(SHA256, 4096)]), "ivy": (0, [(SHA256, 4096)]), "jo": (0, [(SHA256, 4096)])}
    twice = alter(runner, deletions=[deletion("jo", SHA256), deletion("jo", SHA512)])
    assert codes(twice) == {"jo": ErrorCode.DUPLICATE_RESOURCE}


def test_describe_needs_describe_and_alter_needs_alter_on_the_cluster(runner: NodeRunner) -> None:
    alter(runner, upsertions=[upsertion("kim")])
    for op in (AclOperation.DESCRIBE, AclOperation.ALTER):
        (created,) = runner.call("CreateAcls", 3, {"creations": [{
            "resource_type": ResourceType.CLUSTER, "resource_name": "kafka-cluster",
            "resource_pattern_type": PatternType.LITERAL, "principal": "User:ANONYMOUS", "host": "*",
            "operation": op, "permission_type": AclPermission.DENY}]}, as_node=PEER).results
        assert created.error_code == 0
    answer = describe(runner, "kim")
    assert (answer.error_code, list(answer.results)) == (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, [])
    results = alter(runner, deletions=[deletion("kim")], upsertions=[upsertion("kim", SHA512), upsertion("lee")])
    assert codes(results) == {"kim": ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "lee": ErrorCode.CLUSTER_AUTHORIZATION_FAILED}
    with runner.node.metadata() as state:
        assert list(state.scram_credentials()) == [("kim", "SCRAM-SHA-256")]
