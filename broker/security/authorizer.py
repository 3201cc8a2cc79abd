"""Decisions on ACLs, following the rules of Kafka's standard authorizer (AclAuthorizer
and its KRaft successor):

- a super user may do anything;
- a resource no binding applies to is open exactly when `allow.everyone.if.no.acl.found`;
- otherwise a DENY binding for the operation (or ALL) wins over any ALLOW;
- and access needs an ALLOW binding for the operation, ALL, or an operation that implies
  it: READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS.

A binding applies to a request when its principal is the request's or `User:*`, and its
host is the client's address or `*`. The index comes from the metadata (AclIndex).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from broker.security.acl import (
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AclBinding,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
)
from broker.security.acl_index import AclIndex

_IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset({AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE,
                                      AclOperation.DELETE, AclOperation.ALTER}),
    AclOperation.DESCRIBE_CONFIGS: frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends a request: a Kafka principal ("User:name") from a host address."""

    principal: str
    host: str


def _applies(b: AclBinding, who: Identity, permission: AclPermission) -> bool:
    return (
        b.permission == permission
        and (b.principal == who.principal or b.principal == WILDCARD_PRINCIPAL)
        and (b.host == who.host or b.host == WILDCARD_HOST)
    )


def decide(index: AclIndex, who: Identity, operation: AclOperation, resource_type: ResourceType,
           name: str, *, allow_everyone_if_no_acl_found: bool,
           super_users: Collection[str] = ()) -> bool:
    """May `who` perform `operation` on the resource (type, literal name)?"""
    if who.principal in super_users:
        return True
    bindings = index.for_resource(resource_type, name)
    if not bindings:
        return allow_everyone_if_no_acl_found
    for b in bindings:
        if (b.operation == operation or b.operation == AclOperation.ALL) and _applies(b, who, AclPermission.DENY):
            return False
    allowing = _IMPLIED_BY.get(operation, frozenset({operation}))
    return any(
        (b.operation in allowing or b.operation == AclOperation.ALL) and _applies(b, who, AclPermission.ALLOW)
        for b in bindings
    )


def decide_any(index: AclIndex, who: Identity, operation: AclOperation, resource_type: ResourceType,
               *, allow_everyone_if_no_acl_found: bool, super_users: Collection[str] = ()) -> bool:
    """May `who` perform `operation` on at least one resource of the type (Kafka's
    authorizeByResourceType, KIP-679: WRITE on some topic grants idempotent produce)?
    True when an ALLOW binding exists whose resources are not all covered by DENY
    bindings (a wildcard DENY, the same literal name, or a DENY prefix of the name)."""
    # A name no binding can be about stands for "a resource with no ACLs"; it also lets
    # super users through whatever is denied.
    if decide(index, who, operation, resource_type, "\x00walrus-no-such-resource",
              allow_everyone_if_no_acl_found=allow_everyone_if_no_acl_found, super_users=super_users):
        return True
    denied_literal: set[str] = set()
    denied_prefix: set[str] = set()
    allowed: list[AclBinding] = []
    for b in index.by_type.get(resource_type, ()):
        if not (b.operation == operation or b.operation == AclOperation.ALL):
            continue
        if _applies(b, who, AclPermission.DENY):
            if b.pattern_type == PatternType.LITERAL and b.resource_name == WILDCARD_RESOURCE:
                return False
            (denied_prefix if b.pattern_type == PatternType.PREFIXED else denied_literal).add(b.resource_name)
        elif _applies(b, who, AclPermission.ALLOW):
            allowed.append(b)
    for b in allowed:
        if b.pattern_type == PatternType.LITERAL and b.resource_name == WILDCARD_RESOURCE:
            return True
    for b in allowed:
        name = b.resource_name
        if b.pattern_type == PatternType.LITERAL and name in denied_literal:
            continue
        if any(name[:i] in denied_prefix for i in range(1, len(name) + 1)):
            continue
        return True
    return False
