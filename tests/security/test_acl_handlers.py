"""The ACL APIs at every version, and what the handlers refuse once ACLs say so, on a
real in-process node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_runner import NodeRunner

from broker.protocol.errors import ErrorCode
from broker.protocol.records import encode_batch
from broker.security.acl import AclOperation, AclPermission, PatternType, ResourceType

pytestmark = pytest.mark.unit

# A connection that proved it is node 2 of the cluster: Kafka's inter-broker principal.
PEER = 2

T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LIT, PRE, MATCH, ANY = PatternType.LITERAL, PatternType.PREFIXED, PatternType.MATCH, PatternType.ANY
ALLOW, DENY = AclPermission.ALLOW, AclPermission.DENY
Op = AclOperation
ME = "User:ANONYMOUS"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRunner]:
    node = NodeRunner(tmp_path_factory.mktemp("acl-node") / "data")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(autouse=True)
def no_acls_left(runner: NodeRunner) -> Iterator[None]:
    yield
    # As another node would: interbroker requests pass whatever the ACLs say.
    delete(runner, flt(), as_node=PEER)


def creation(rtype: ResourceType, name: str, pattern: PatternType, op: AclOperation,
             perm: AclPermission = ALLOW, principal: str = ME, host: str = "*") -> dict[str, Any]:
    return {"resource_type": rtype, "resource_name": name, "resource_pattern_type": pattern,
            "principal": principal, "host": host, "operation": op, "permission_type": perm}


def flt(rtype: ResourceType = ResourceType.ANY, name: str | None = None, pattern: PatternType = ANY,
        principal: str | None = None, host: str | None = None, op: AclOperation = Op.ANY,
        perm: AclPermission = AclPermission.ANY) -> dict[str, Any]:
    return {"resource_type_filter": rtype, "resource_name_filter": name, "pattern_type_filter": pattern,
            "principal_filter": principal, "host_filter": host, "operation": op, "permission_type": perm}


def create(runner: NodeRunner, *creations: dict[str, Any], version: int = 3, as_node: int | None = None) -> list[Any]:
    return list(runner.call("CreateAcls", version, {"creations": list(creations)}, as_node=as_node).results)


def describe(runner: NodeRunner, f: dict[str, Any], version: int = 3) -> Any:
    return runner.call("DescribeAcls", version, f)


def delete(runner: NodeRunner, *filters: dict[str, Any], version: int = 3, as_node: int | None = None) -> list[Any]:
    return list(runner.call("DeleteAcls", version, {"filters": list(filters)}, as_node=as_node).filter_results)


def described(answer: Any) -> set[tuple[Any, ...]]:
    return {(r.resource_type, r.resource_name, getattr(r, "pattern_type", LIT), a.principal, a.host,
             a.operation, a.permission_type) for r in answer.resources for a in r.acls}


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_create_describe_delete_at_every_version(runner: NodeRunner, version: int) -> None:
    topic = f"v{version}-orders"
    results = create(runner, creation(T, topic, LIT, Op.READ), creation(G, "g", LIT, Op.ALL, DENY),
                     version=version)
    assert [r.error_code for r in results] == [0, 0]
    answer = describe(runner, flt(T, topic, LIT), version)
    assert answer.error_code == 0
    assert described(answer) == {(T, topic, LIT, ME, "*", Op.READ, ALLOW)}
    (removed,) = delete(runner, flt(ResourceType.ANY, None, LIT), version=version)
    assert removed.error_code == 0
    assert sorted(m.resource_name for m in removed.matching_acls) == ["g", topic]
    assert described(describe(runner, flt(), version)) == set()


def test_prefixed_bindings_and_match_filters(runner: NodeRunner) -> None:
    create(runner, creation(T, "orders", LIT, Op.READ), creation(T, "ord", PRE, Op.WRITE),
           creation(T, "*", LIT, Op.DESCRIBE), creation(T, "pay", PRE, Op.READ))
    names = {r.resource_name for r in describe(runner, flt(T, "orders-eu", MATCH)).resources}
    assert names == {"ord", "*"}
    assert {r.resource_name for r in describe(runner, flt(T, "orders", ANY)).resources} == {"orders"}
    (removed,) = delete(runner, flt(T, "orders", MATCH))
    assert sorted(m.resource_name for m in removed.matching_acls) == ["*", "ord", "orders"]
    assert {r.resource_name for r in describe(runner, flt()).resources} == {"pay"}


def test_invalid_bindings_are_refused_one_by_one(runner: NodeRunner) -> None:
    results = create(
        runner,
        creation(T, "ok", LIT, Op.READ),
        creation(T, "t", MATCH, Op.READ),
        creation(ResourceType.ANY, "t", LIT, Op.READ),
        creation(T, "t", LIT, Op.ANY),
        creation(T, "t", LIT, Op.READ, AclPermission.ANY),
        creation(C, "not-the-cluster", LIT, Op.ALTER),
        creation(T, "t", LIT, Op.READ, principal="nobody"),
        creation(T, "", LIT, Op.READ),
        creation(ResourceType(0), "t", LIT, Op.READ),
    )
    assert [r.error_code for r in results] == [0] + [ErrorCode.INVALID_REQUEST] * 8
    assert all(r.error_message for r in results[1:])
    assert {r.resource_name for r in describe(runner, flt()).resources} == {"ok"}


def test_unknown_filters_are_invalid_requests(runner: NodeRunner) -> None:
    answer = describe(runner, flt(op=Op.UNKNOWN))
    assert answer.error_code == ErrorCode.INVALID_REQUEST and answer.resources == []
    bad, good = delete(runner, flt(pattern=PatternType.UNKNOWN), flt())
    assert bad.error_code == ErrorCode.INVALID_REQUEST and good.error_code == 0


def produce(runner: NodeRunner, topic: str, as_node: int | None = None,
            client_id: str = "unit") -> int:
    with runner.node.metadata() as state:
        missing = state.topic(topic) is None
    if missing:
        runner.call("Metadata", 9, {"topics": [{"name": topic, "topic_id": None}], "allow_auto_topic_creation": True,
                                    "include_cluster_authorized_operations": False,
                                    "include_topic_authorized_operations": False}, as_node=PEER)
    records = encode_batch([(b"k", b"v")])
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}]}
    answer = runner.call("Produce", 9, body, as_node=as_node, client_id=client_id)
    return int(answer.responses[0].partition_responses[0].error_code)


def metadata(runner: NodeRunner, *topics: str) -> dict[str, int]:
    body = {"topics": [{"name": t, "topic_id": None} for t in topics] if topics else None,
            "allow_auto_topic_creation": True, "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False}
    return {t.name: t.error_code for t in runner.call("Metadata", 9, body).topics}


def test_deny_write_refuses_produce_until_the_acl_is_deleted(runner: NodeRunner) -> None:
    assert produce(runner, "guarded") == 0
    create(runner, creation(T, "guarded", LIT, Op.WRITE, DENY))
    assert produce(runner, "guarded") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert produce(runner, "open") == 0  # no ACL on this one
    assert produce(runner, "guarded", as_node=PEER) == 0
    # The client id nodes use proves nothing by itself.
    assert produce(runner, "guarded", client_id="walrus-interbroker") == (
        ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    delete(runner, flt(T, "guarded", LIT, op=Op.WRITE))
    assert produce(runner, "guarded") == 0


def test_acls_for_another_principal_close_the_topic_to_anonymous(runner: NodeRunner) -> None:
    assert produce(runner, "alices") == 0
    create(runner, creation(T, "alices", LIT, Op.WRITE, principal="User:alice"))
    assert produce(runner, "alices") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    create(runner, creation(T, "alices", LIT, Op.ALL, principal="User:*", host="127.0.0.1"))
    assert produce(runner, "alices") == 0


def test_metadata_hides_or_refuses_topics_the_client_may_not_describe(runner: NodeRunner) -> None:
    assert metadata(runner, "seen", "secret") == {"seen": 0, "secret": 0}
    create(runner, creation(T, "secret", LIT, Op.DESCRIBE, DENY))
    assert metadata(runner, "seen", "secret") == {"seen": 0, "secret": ErrorCode.TOPIC_AUTHORIZATION_FAILED}
    listed = metadata(runner)
    assert "seen" in listed and "secret" not in listed
    create(runner, creation(T, "auto-", PRE, Op.CREATE, DENY))
    assert metadata(runner, "auto-made") == {"auto-made": ErrorCode.TOPIC_AUTHORIZATION_FAILED}
    with runner.node.metadata() as state:
        assert state.topic("auto-made") is None


def test_group_acls_refuse_join_and_offset_commit(runner: NodeRunner) -> None:
    create(runner, creation(G, "blocked", LIT, Op.ALL), creation(G, "blocked", LIT, Op.READ, DENY))
    join = runner.call("JoinGroup", 5, {
        "group_id": "blocked", "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000, "member_id": "",
        "group_instance_id": None, "protocol_type": "consumer", "protocols": []})
    assert join.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
    found = runner.call("FindCoordinator", 3, {"key": "blocked", "key_type": 0})
    assert found.error_code == 0  # DENY READ leaves DESCRIBE (FindCoordinator) to ALLOW ALL
    commit = runner.call("OffsetCommit", 8, {
        "group_id": "blocked", "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
        "topics": [{"name": "seen", "partitions": [{"partition_index": 0, "committed_offset": 0,
                                                    "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
    assert commit.topics[0].partitions[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED


def test_cluster_acls_guard_the_acl_apis_and_configs(runner: NodeRunner) -> None:
    create(runner, creation(C, "kafka-cluster", LIT, Op.ALL, principal="User:*"),
           creation(C, "kafka-cluster", LIT, Op.ALTER, DENY))
    (refused,) = create(runner, creation(T, "x", LIT, Op.READ))
    assert refused.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    (not_deleted,) = delete(runner, flt())
    assert not_deleted.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    assert describe(runner, flt()).error_code == 0  # DESCRIBE is still allowed by ALL
    create(runner, creation(C, "kafka-cluster", LIT, Op.DESCRIBE, DENY), as_node=PEER)
    assert describe(runner, flt()).error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    body = {"resources": [{"resource_type": 4, "resource_name": "", "configuration_keys": None}],
            "include_synonyms": False}
    assert runner.call("DescribeConfigs", 1, body).results[0].error_code == 0
    create(runner, creation(C, "kafka-cluster", LIT, Op.DESCRIBE_CONFIGS, DENY), as_node=PEER)
    assert runner.call("DescribeConfigs", 1, body).results[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_super_users_and_allow_everyone_off(tmp_path: Path) -> None:
    closed = NodeRunner(tmp_path / "closed", allow_everyone_if_no_acl_found=False)
    try:
        assert produce(closed, "t") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        assert create(closed, creation(T, "t", LIT, Op.WRITE))[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        assert create(closed, creation(T, "t", LIT, Op.WRITE), as_node=PEER)[0].error_code == 0
        assert produce(closed, "t") == 0
    finally:
        closed.close()
    admin = NodeRunner(tmp_path / "admin", allow_everyone_if_no_acl_found=False, super_users=(ME,))
    try:
        assert produce(admin, "t") == 0
    finally:
        admin.close()


def test_authorized_operations_follow_the_acls(runner: NodeRunner) -> None:
    produce(runner, "ops")
    body = {"topics": [{"name": "ops", "topic_id": None}], "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": True, "include_topic_authorized_operations": True}
    everything = sum(1 << op for op in (Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE,
                                        Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS))
    answer = runner.call("Metadata", 9, body)
    assert answer.topics[0].topic_authorized_operations == everything
    assert answer.cluster_authorized_operations & (1 << Op.IDEMPOTENT_WRITE)
    create(runner, creation(T, "ops", LIT, Op.ALL), creation(T, "ops", LIT, Op.WRITE, DENY))
    answer = runner.call("Metadata", 9, body)
    assert answer.topics[0].topic_authorized_operations == everything & ~(1 << Op.WRITE)
    groups = runner.call("DescribeGroups", 3, {"groups": ["g-ops"], "include_authorized_operations": True})
    assert groups.groups[0].authorized_operations == (1 << Op.READ) | (1 << Op.DELETE) | (1 << Op.DESCRIBE)


def fetch_error(runner: NodeRunner, topic: str) -> int:
    body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}], "forgotten_topics_data": [], "rack_id": ""}
    return int(runner.call("Fetch", 12, body).responses[0].partitions[0].error_code)


def list_offsets_error(runner: NodeRunner, topic: str) -> int:
    body = {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
        {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -2}]}]}
    return int(runner.call("ListOffsets", 7, body).topics[0].partitions[0].error_code)


def test_reads_need_read_and_describe_on_the_topic(runner: NodeRunner) -> None:
    produce(runner, "readable")
    assert (fetch_error(runner, "readable"), list_offsets_error(runner, "readable")) == (0, 0)
    create(runner, creation(T, "readable", LIT, Op.DESCRIBE))
    # DESCRIBE alone: offsets may be listed, records not read.
    assert fetch_error(runner, "readable") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert list_offsets_error(runner, "readable") == 0
    create(runner, creation(T, "readable", LIT, Op.READ))
    assert fetch_error(runner, "readable") == 0


def test_idempotent_producers_need_idempotent_write_or_write_on_some_topic(tmp_path: Path) -> None:
    closed = NodeRunner(tmp_path / "closed", allow_everyone_if_no_acl_found=False)
    body = {"transactional_id": None, "transaction_timeout_ms": 60000}
    try:
        assert closed.call("InitProducerId", 4, body).error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        create(closed, creation(T, "mine", PRE, Op.WRITE), as_node=PEER)
        answer = closed.call("InitProducerId", 4, body)
        assert answer.error_code == 0 and answer.producer_id >= 0
    finally:
        closed.close()
