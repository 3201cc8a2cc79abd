"""The authorizer's decisions, rule by rule (Kafka's AclAuthorizer)."""

from __future__ import annotations

import pytest

from broker.security.acl import AclBinding, AclOperation, AclPermission, PatternType, ResourceType
from broker.security.acl_index import AclIndex
from broker.security.authorizer import Identity, decide, decide_any

pytestmark = pytest.mark.unit

T, C = ResourceType.TOPIC, ResourceType.CLUSTER
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = AclPermission.ALLOW, AclPermission.DENY
Op = AclOperation
ME = Identity("User:ANONYMOUS", "127.0.0.1")


def acl(name: str, op: AclOperation, perm: AclPermission = ALLOW, pattern: PatternType = LIT,
        principal: str = "User:ANONYMOUS", host: str = "*", rtype: ResourceType = T) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def may(bindings: list[AclBinding], op: AclOperation, name: str = "orders", *, everyone: bool = True,
        who: Identity = ME, rtype: ResourceType = T, super_users: tuple[str, ...] = ()) -> bool:
    return decide(AclIndex.build(bindings), who, op, rtype, name,
                  allow_everyone_if_no_acl_found=everyone, super_users=super_users)


def test_a_resource_without_acls_follows_allow_everyone_if_no_acl_found() -> None:
    assert may([], Op.WRITE, everyone=True)
    assert not may([], Op.WRITE, everyone=False)
    # ACLs on another topic leave this one without ACLs.
    assert may([acl("other", Op.READ, DENY)], Op.READ)


def test_acls_for_another_principal_close_the_resource() -> None:
    assert not may([acl("orders", Op.READ, principal="User:alice")], Op.READ)


def test_deny_wins_over_allow() -> None:
    assert not may([acl("orders", Op.WRITE), acl("orders", Op.WRITE, DENY)], Op.WRITE)
    assert not may([acl("orders", Op.ALL), acl("*", Op.ALL, DENY)], Op.READ)


def test_deny_applies_to_its_own_operation_and_all_only() -> None:
    bindings = [acl("orders", Op.ALL), acl("orders", Op.READ, DENY)]
    assert not may(bindings, Op.READ)
    assert may(bindings, Op.DESCRIBE)
    assert may(bindings, Op.WRITE)


def test_implied_operations() -> None:
    for grant in (Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.DESCRIBE):
        assert may([acl("orders", grant)], Op.DESCRIBE), grant
    assert not may([acl("orders", Op.CREATE)], Op.DESCRIBE)
    assert may([acl("orders", Op.ALTER_CONFIGS)], Op.DESCRIBE_CONFIGS)
    assert not may([acl("orders", Op.DESCRIBE_CONFIGS)], Op.ALTER_CONFIGS)
    assert not may([acl("orders", Op.WRITE)], Op.READ)
    assert may([acl("orders", Op.ALL)], Op.IDEMPOTENT_WRITE)


def test_principal_and_host_wildcards() -> None:
    assert may([acl("orders", Op.READ, principal="User:*")], Op.READ)
    assert may([acl("orders", Op.READ, host="127.0.0.1")], Op.READ)
    assert not may([acl("orders", Op.READ, host="10.1.1.1")], Op.READ)
    assert not may([acl("orders", Op.READ, DENY, principal="User:*"), acl("orders", Op.READ)], Op.READ)


def test_wildcard_and_prefixed_patterns_apply_to_matching_names() -> None:
    assert not may([acl("*", Op.WRITE, DENY)], Op.WRITE, "anything")
    assert not may([acl("ord", Op.WRITE, DENY, PRE)], Op.WRITE, "orders")
    assert may([acl("pay", Op.WRITE, DENY, PRE)], Op.WRITE, "orders")
    assert may([acl("ord", Op.WRITE, ALLOW, PRE)], Op.WRITE, "orders", everyone=False)


def test_cluster_resource() -> None:
    closed = [acl("kafka-cluster", Op.DESCRIBE, principal="User:admin", rtype=C)]
    assert not may(closed, Op.ALTER, "kafka-cluster", rtype=C)
    assert not may(closed, Op.ALTER, "kafka-cluster", rtype=C, who=Identity("User:admin", "h"))
    assert may(closed, Op.DESCRIBE, "kafka-cluster", rtype=C, who=Identity("User:admin", "h"))


def test_super_users_pass_every_check() -> None:
    assert may([acl("*", Op.ALL, DENY, principal="User:*")], Op.WRITE, super_users=("User:ANONYMOUS",))
    assert may([], Op.WRITE, everyone=False, super_users=("User:ANONYMOUS",))


def any_topic(bindings: list[AclBinding], op: AclOperation, *, everyone: bool = False) -> bool:
    return decide_any(AclIndex.build(bindings), ME, op, T, allow_everyone_if_no_acl_found=everyone)


def test_write_on_some_topic_kip_679() -> None:
    assert any_topic([], Op.WRITE, everyone=True)
    assert not any_topic([], Op.WRITE)
    assert any_topic([acl("orders", Op.WRITE)], Op.WRITE)
    assert any_topic([acl("ord", Op.WRITE, pattern=PRE)], Op.WRITE)
    assert any_topic([acl("*", Op.ALL)], Op.WRITE)
    # Each allowed pattern covered by a deny: nothing can be written.
    assert not any_topic([acl("orders", Op.WRITE), acl("orders", Op.WRITE, DENY)], Op.WRITE)
    assert not any_topic([acl("orders", Op.WRITE), acl("or", Op.WRITE, DENY, PRE)], Op.WRITE)
    assert not any_topic([acl("orders", Op.WRITE), acl("*", Op.WRITE, DENY)], Op.WRITE)
    # A literal deny does not cover a prefix allow.
    assert any_topic([acl("ord", Op.WRITE, pattern=PRE), acl("ord", Op.WRITE, DENY)], Op.WRITE)
    assert not any_topic([acl("orders", Op.READ)], Op.WRITE)
