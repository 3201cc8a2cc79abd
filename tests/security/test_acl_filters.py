"""ACL bindings, filters and their validation: Kafka's AclBindingFilter semantics."""

from __future__ import annotations

import pytest

from broker.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
    binding_problem,
    filter_problem,
    wire_code,
)

pytestmark = pytest.mark.unit

T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = AclPermission.ALLOW, AclPermission.DENY


def acl(name: str, pattern: PatternType = LIT, rtype: ResourceType = T, principal: str = "User:a",
        host: str = "*", op: AclOperation = AclOperation.READ, perm: AclPermission = ALLOW) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


STORED = [
    acl("orders"),
    acl("*"),
    acl("ord", PRE),
    acl("orders", PRE),
    acl("pay", PRE),
    acl("orders", rtype=G),
    acl("kafka-cluster", rtype=C, op=AclOperation.ALTER),
]


def matched(flt: AclBindingFilter) -> list[AclBinding]:
    return [b for b in STORED if flt.matches(b)]


def test_the_any_filter_matches_everything() -> None:
    assert matched(AclBindingFilter()) == STORED


def test_literal_filter_with_a_name_matches_that_literal_only() -> None:
    assert matched(AclBindingFilter(T, "orders", LIT)) == [acl("orders")]


def test_prefixed_filter_with_a_name_matches_that_prefix_only() -> None:
    assert matched(AclBindingFilter(T, "ord", PRE)) == [acl("ord", PRE)]


def test_any_pattern_with_a_name_matches_equal_names_of_every_pattern_type() -> None:
    assert matched(AclBindingFilter(T, "orders", PatternType.ANY)) == [acl("orders"), acl("orders", PRE)]


def test_match_finds_every_pattern_that_applies_to_the_name() -> None:
    # The literal name, the wildcard and each prefix of the name; not "pay".
    assert matched(AclBindingFilter(T, "orders", PatternType.MATCH)) == [
        acl("orders"), acl("*"), acl("ord", PRE), acl("orders", PRE)]
    assert matched(AclBindingFilter(T, "ordinal", PatternType.MATCH)) == [acl("*"), acl("ord", PRE)]


def test_match_without_a_name_matches_every_pattern_of_the_type() -> None:
    assert len(matched(AclBindingFilter(T, None, PatternType.MATCH))) == 5


def test_entry_fields_filter_by_equality_or_any() -> None:
    alice = acl("x", principal="User:alice", host="10.0.0.1", op=AclOperation.WRITE, perm=DENY)
    assert AclBindingFilter(principal="User:alice").matches(alice)
    assert not AclBindingFilter(principal="User:bob").matches(alice)
    assert AclBindingFilter(host="10.0.0.1").matches(alice)
    assert not AclBindingFilter(host="*").matches(alice)  # a filter's "*" is a plain value
    assert AclBindingFilter(operation=AclOperation.WRITE, permission=DENY).matches(alice)
    assert not AclBindingFilter(operation=AclOperation.ALL).matches(alice)
    assert not AclBindingFilter(permission=ALLOW).matches(alice)


def test_rows_round_trip_and_unknown_codes_read_as_unknown() -> None:
    b = acl("t", PRE, op=AclOperation.IDEMPOTENT_WRITE, perm=DENY)
    assert AclBinding.from_row(b.to_row()) == b
    f = AclBindingFilter(T, None, PatternType.MATCH, None, "h", AclOperation.ANY, ALLOW)
    assert AclBindingFilter.from_row(f.to_row()) == f
    assert wire_code(ResourceType, 99) is ResourceType.UNKNOWN
    assert wire_code(AclOperation, -3) is AclOperation.UNKNOWN


@pytest.mark.parametrize(("binding", "fragment"), [
    (acl("t", rtype=ResourceType.ANY), "resourceType"),
    (acl("t", rtype=ResourceType.UNKNOWN), "resourceType"),
    (acl("t", PatternType.MATCH), "patternType"),
    (acl("t", PatternType.ANY), "patternType"),
    (acl("t", op=AclOperation.ANY), "operation"),
    (acl("t", op=AclOperation.UNKNOWN), "operation"),
    (acl("t", perm=AclPermission.ANY), "permissionType"),
    (acl(""), "empty resource name"),
    (acl("my-cluster", rtype=C), "kafka-cluster"),
    (acl("t", principal="alice"), "principalType:principalName"),
    (acl("t", principal="User:"), "principalType:principalName"),
    (acl("t", host=""), "host"),
])
def test_bindings_kafka_refuses(binding: AclBinding, fragment: str) -> None:
    problem = binding_problem(binding)
    assert problem is not None and fragment in problem


def test_valid_bindings_pass() -> None:
    assert binding_problem(acl("t", PRE, principal="User:*", host="127.0.0.1", op=AclOperation.ALL)) is None
    assert binding_problem(acl("kafka-cluster", rtype=C, op=AclOperation.ALTER)) is None


def test_filters_with_unknown_elements_are_refused() -> None:
    assert filter_problem(AclBindingFilter()) is None
    assert filter_problem(AclBindingFilter(resource_type=ResourceType.UNKNOWN)) is not None
    assert filter_problem(AclBindingFilter(pattern_type=PatternType.UNKNOWN)) is not None
    assert filter_problem(AclBindingFilter(operation=AclOperation.UNKNOWN)) is not None
    assert filter_problem(AclBindingFilter(permission=AclPermission.UNKNOWN)) is not None
