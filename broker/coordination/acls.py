"""The cluster's ACL bindings, part of the replicated metadata.

Bindings are a set: creating one that exists changes nothing (Kafka answers success),
and DeleteAcls removes every binding a filter matches. After each change the table
publishes a new immutable AclIndex (broker/security/acl_index.py), so the authorizer
reads it on any thread without the metadata lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from broker.security.acl import AclBinding, AclBindingFilter, binding_problem, filter_problem
from broker.security.acl_index import EMPTY_INDEX, AclIndex


@dataclass(frozen=True, slots=True)
class AclCreation:
    """Outcome of one binding of a CreateAcls command: problem None means stored."""

    problem: str | None = None


@dataclass(frozen=True, slots=True)
class AclDeletion:
    """Outcome of one filter of a DeleteAcls command: the bindings it removed, or why
    the filter was refused."""

    removed: tuple[AclBinding, ...] = ()
    problem: str | None = None


class AclTable:
    def __init__(self) -> None:
        self._bindings: set[AclBinding] = set()
        self.index: AclIndex = EMPTY_INDEX

    def __len__(self) -> int:
        return len(self._bindings)

    def create(self, rows: Sequence[Any]) -> tuple[AclCreation, ...]:
        """Store each valid binding; each row gets its own outcome, as CreateAcls answers
        per binding."""
        outcomes = []
        for row in rows:
            try:
                binding = AclBinding.from_row(row)
            except (TypeError, ValueError) as exc:
                outcomes.append(AclCreation(f"malformed binding: {exc}"))
                continue
            problem = binding_problem(binding)
            if problem is None:
                self._bindings.add(binding)
            outcomes.append(AclCreation(problem))
        self._publish()
        return tuple(outcomes)

    def delete(self, rows: Sequence[Any]) -> tuple[AclDeletion, ...]:
        """Remove what each filter matches. A binding matched by several filters is
        reported under the first of them, once."""
        outcomes = []
        for row in rows:
            try:
                flt = AclBindingFilter.from_row(row)
            except (TypeError, ValueError) as exc:
                outcomes.append(AclDeletion(problem=f"malformed filter: {exc}"))
                continue
            problem = filter_problem(flt)
            if problem is not None:
                outcomes.append(AclDeletion(problem=problem))
                continue
            removed = sorted((b for b in self._bindings if flt.matches(b)), key=AclBinding.sort_key)
            self._bindings.difference_update(removed)
            outcomes.append(AclDeletion(tuple(removed)))
        self._publish()
        return tuple(outcomes)

    def matching(self, flt: AclBindingFilter) -> list[AclBinding]:
        return sorted((b for b in self._bindings if flt.matches(b)), key=AclBinding.sort_key)

    def to_rows(self) -> list[list[Any]]:
        return [b.to_row() for b in sorted(self._bindings, key=AclBinding.sort_key)]

    def load_rows(self, rows: Iterable[Any]) -> None:
        self._bindings = {AclBinding.from_row(r) for r in rows}
        self._publish()

    def _publish(self) -> None:
        # One reference assignment: readers see the old index or the new one, whole.
        self.index = AclIndex.build(self._bindings) if self._bindings else EMPTY_INDEX


@dataclass(frozen=True, slots=True)
class AclsCreated:
    outcomes: tuple[AclCreation, ...]


@dataclass(frozen=True, slots=True)
class AclsDeleted:
    outcomes: tuple[AclDeletion, ...]
