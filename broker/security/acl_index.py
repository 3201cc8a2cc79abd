"""ACL bindings grouped the way the authorizer looks them up: by literal name, the
literal wildcard, and prefixes, per resource type. Immutable: the ACL table in the
metadata publishes a new one after each change, so readers need no lock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from broker.security.acl import WILDCARD_RESOURCE, AclBinding, PatternType, ResourceType


@dataclass(frozen=True, slots=True)
class AclIndex:
    """Bindings grouped the way the authorizer looks them up."""

    count: int = 0
    literal: dict[tuple[ResourceType, str], tuple[AclBinding, ...]] = field(default_factory=dict)
    wildcard: dict[ResourceType, tuple[AclBinding, ...]] = field(default_factory=dict)
    prefixed: dict[ResourceType, tuple[AclBinding, ...]] = field(default_factory=dict)
    by_type: dict[ResourceType, tuple[AclBinding, ...]] = field(default_factory=dict)

    def for_resource(self, resource_type: ResourceType, name: str) -> list[AclBinding]:
        """Every binding that applies to the resource: its literal name, the literal
        wildcard `*`, and prefixes of its name."""
        found = list(self.literal.get((resource_type, name), ()))
        found.extend(self.wildcard.get(resource_type, ()))
        found.extend(b for b in self.prefixed.get(resource_type, ()) if name.startswith(b.resource_name))
        return found

    @classmethod
    def build(cls, bindings: Iterable[AclBinding]) -> AclIndex:
        literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        wildcard: dict[ResourceType, list[AclBinding]] = {}
        prefixed: dict[ResourceType, list[AclBinding]] = {}
        by_type: dict[ResourceType, list[AclBinding]] = {}
        count = 0
        for b in bindings:
            count += 1
            by_type.setdefault(b.resource_type, []).append(b)
            if b.pattern_type == PatternType.PREFIXED:
                prefixed.setdefault(b.resource_type, []).append(b)
            elif b.resource_name == WILDCARD_RESOURCE:
                wildcard.setdefault(b.resource_type, []).append(b)
            else:
                literal.setdefault((b.resource_type, b.resource_name), []).append(b)
        return cls(
            count,
            {k: tuple(v) for k, v in literal.items()},
            {k: tuple(v) for k, v in wildcard.items()},
            {k: tuple(v) for k, v in prefixed.items()},
            {k: tuple(v) for k, v in by_type.items()},
        )


EMPTY_INDEX = AclIndex()
