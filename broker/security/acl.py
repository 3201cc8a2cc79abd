"""Kafka's ACL model: resource patterns, access control entries, bindings and the
filters that select them, with the wire codes of each enum.

Pure values: the cluster metadata stores bindings, the ACL handlers build filters from
requests, and the authorizer reads both. Matching follows Kafka's ResourcePatternFilter
and AccessControlEntryFilter exactly (ANY matches every value, MATCH on a pattern type
matches every pattern that would apply to the given name).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
CLUSTER_RESOURCE_NAME = "kafka-cluster"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


def wire_code(enum: type[IntEnum], value: object) -> Any:
    """A wire code as its enum member; codes this broker does not know are UNKNOWN, as
    Kafka's fromCode reads them."""
    try:
        return enum(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return enum(0)


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One stored ACL: who (principal, host) may or may not (permission) do what
    (operation) to which resources (type, name, pattern type)."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermission

    def to_row(self) -> list[Any]:
        """JSON-safe form for Raft commands and snapshots."""
        return [int(self.resource_type), self.resource_name, int(self.pattern_type),
                self.principal, self.host, int(self.operation), int(self.permission)]

    @classmethod
    def from_row(cls, row: Any) -> AclBinding:
        rtype, name, pattern, principal, host, operation, permission = row
        return cls(wire_code(ResourceType, rtype), str(name), wire_code(PatternType, pattern),
                   str(principal), str(host), wire_code(AclOperation, operation),
                   wire_code(AclPermission, permission))

    def sort_key(self) -> tuple[int, str, int, str, str, int, int]:
        return (int(self.resource_type), self.resource_name, int(self.pattern_type),
                self.principal, self.host, int(self.operation), int(self.permission))


@dataclass(frozen=True, slots=True)
class AclBindingFilter:
    """Selects bindings for DescribeAcls and DeleteAcls; None fields match anything."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermission = AclPermission.ANY

    def to_row(self) -> list[Any]:
        return [int(self.resource_type), self.resource_name, int(self.pattern_type),
                self.principal, self.host, int(self.operation), int(self.permission)]

    @classmethod
    def from_row(cls, row: Any) -> AclBindingFilter:
        rtype, name, pattern, principal, host, operation, permission = row
        return cls(wire_code(ResourceType, rtype), None if name is None else str(name),
                   wire_code(PatternType, pattern), None if principal is None else str(principal),
                   None if host is None else str(host), wire_code(AclOperation, operation),
                   wire_code(AclPermission, permission))

    def matches(self, binding: AclBinding) -> bool:
        return self.matches_pattern(binding) and self.matches_entry(binding)

    def matches_pattern(self, b: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and self.resource_type != b.resource_type:
            return False
        pattern = self.pattern_type
        if pattern not in (PatternType.ANY, PatternType.MATCH) and pattern != b.pattern_type:
            return False
        name = self.resource_name
        if name is None:
            return True
        if pattern == PatternType.ANY or pattern == b.pattern_type:
            return name == b.resource_name
        # MATCH: every stored pattern that would apply to a resource called `name`.
        if b.pattern_type == PatternType.LITERAL:
            return name == b.resource_name or b.resource_name == WILDCARD_RESOURCE
        if b.pattern_type == PatternType.PREFIXED:
            return name.startswith(b.resource_name)
        return False

    def matches_entry(self, b: AclBinding) -> bool:
        if self.principal is not None and self.principal != b.principal:
            return False
        if self.host is not None and self.host != b.host:
            return False
        if self.operation != AclOperation.ANY and self.operation != b.operation:
            return False
        return self.permission == AclPermission.ANY or self.permission == b.permission


def _principal_problem(principal: str) -> str | None:
    kind, sep, name = principal.partition(":")
    if not sep or not kind or not name:
        return f"expected a string in format principalType:principalName but got {principal}"
    return None


def binding_problem(b: AclBinding) -> str | None:
    """Why Kafka would refuse to create this binding (INVALID_REQUEST), or None."""
    if b.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {b.resource_type.name}"
    if b.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {b.pattern_type.name}"
    if b.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        return f"Invalid operation {b.operation.name}"
    if b.permission in (AclPermission.UNKNOWN, AclPermission.ANY):
        return f"Invalid permissionType {b.permission.name}"
    if not b.resource_name:
        return "Invalid empty resource name specified"
    if b.resource_type == ResourceType.CLUSTER and b.resource_name != CLUSTER_RESOURCE_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}"
    principal = _principal_problem(b.principal)
    if principal is not None:
        return principal
    if not b.host:
        return "Invalid empty host specified"
    return None


def filter_problem(f: AclBindingFilter) -> str | None:
    """Why Kafka would refuse this filter (INVALID_REQUEST), or None: a filter with an
    UNKNOWN element matches nothing a client could mean."""
    if f.resource_type == ResourceType.UNKNOWN or f.pattern_type == PatternType.UNKNOWN:
        return "Unknown patternFilter."
    if f.operation == AclOperation.UNKNOWN or f.permission == AclPermission.UNKNOWN:
        return "Unknown entryFilter."
    return None
