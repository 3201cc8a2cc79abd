"""Classic consumer groups' membership, part of the replicated metadata.

A group's coordinator stores a record of the group each time a generation is complete
(the leader's assignment is in) and each time the group empties, as Kafka writes group
metadata to its offsets topic. When the coordinator dies, the node that takes the group
over loads the record and serves the same generation, members and assignments: the
members carry on heartbeating and committing, without a rebalance.

Records only move forward: a record older than the stored one (a lower generation, from
a node that lost the group and has not noticed yet) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Bounds on what one record may hold, so a record cannot grow the metadata without
# limit. A group beyond them is refused, and lives on in its coordinator's memory only
# (a new coordinator makes its members rejoin), as Kafka refuses group metadata larger
# than its offsets topic takes.
MAX_MEMBERS = 10_000
MAX_RECORD_BYTES = 4 << 20
MAX_ID_LENGTH = 32767  # a Kafka string's longest


@dataclass(frozen=True, slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    # The member's metadata for the group's protocol (a consumer's subscription).
    subscription: bytes
    assignment: bytes

    def to_row(self) -> list[Any]:
        return [self.member_id, self.group_instance_id, self.client_id, self.client_host,
                self.session_timeout_ms, self.rebalance_timeout_ms, self.subscription.hex(),
                self.assignment.hex()]

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> StoredMember:
        (member_id, instance_id, client_id, client_host, session_ms, rebalance_ms,
         subscription, assignment) = row
        return cls(member_id, instance_id, client_id, client_host, session_ms, rebalance_ms,
                   bytes.fromhex(subscription), bytes.fromhex(assignment))


@dataclass(frozen=True, slots=True)
class StoredGroup:
    group_id: str
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    members: tuple[StoredMember, ...] = ()

    def to_row(self) -> list[Any]:
        return [self.group_id, self.generation_id, self.protocol_type, self.protocol_name,
                self.leader_id, [m.to_row() for m in self.members]]

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> StoredGroup:
        group_id, generation, protocol_type, protocol_name, leader_id, members = row
        return cls(group_id, generation, protocol_type, protocol_name, leader_id,
                   tuple(StoredMember.from_row(m) for m in members))


def _optional_str(value: object) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= MAX_ID_LENGTH)


def record_problem(record: object) -> str | None:
    """Why `record` cannot be stored, or None. It arrives through Raft from any node's
    proposal, so every field is checked before it is kept."""
    if not isinstance(record, StoredGroup):
        return "not a group record"
    if not isinstance(record.group_id, str) or not 0 < len(record.group_id) <= MAX_ID_LENGTH:
        return "bad group id"
    if type(record.generation_id) is not int or record.generation_id < 0:
        return "bad generation"
    if not (_optional_str(record.protocol_type) and _optional_str(record.protocol_name)
            and _optional_str(record.leader_id)):
        return "bad protocol or leader"
    if not isinstance(record.members, tuple) or len(record.members) > MAX_MEMBERS:
        return "bad member list"
    seen: set[str] = set()
    size = 0
    for m in record.members:
        if not isinstance(m, StoredMember):
            return "bad member"
        if not isinstance(m.member_id, str) or not m.member_id or len(m.member_id) > MAX_ID_LENGTH:
            return "bad member id"
        if m.member_id in seen:
            return f"member {m.member_id} twice"
        seen.add(m.member_id)
        if not (_optional_str(m.group_instance_id) and _optional_str(m.client_id)
                and _optional_str(m.client_host)):
            return f"bad identity for member {m.member_id}"
        if type(m.session_timeout_ms) is not int or type(m.rebalance_timeout_ms) is not int:
            return f"bad timeouts for member {m.member_id}"
        if m.session_timeout_ms <= 0 or m.rebalance_timeout_ms < 0:
            return f"bad timeouts for member {m.member_id}"
        if not isinstance(m.subscription, bytes) or not isinstance(m.assignment, bytes):
            return f"bad metadata for member {m.member_id}"
        size += (len(m.subscription) + len(m.assignment) + len(m.member_id)
                 + len(m.client_id) + len(m.client_host) + len(m.group_instance_id or ""))
        if size > MAX_RECORD_BYTES:
            return f"more than {MAX_RECORD_BYTES} bytes of member metadata"
    if record.members and record.leader_id not in seen:
        return "the leader is not a member"
    return None


class GroupTable:
    """group id -> its latest stored record."""

    def __init__(self) -> None:
        self._groups: dict[str, StoredGroup] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def get(self, group_id: str) -> StoredGroup | None:
        return self._groups.get(group_id)

    def ids(self) -> list[str]:
        return sorted(self._groups)

    def store(self, record: StoredGroup) -> str | None:
        """Keep a record that record_problem accepted; the reason it is refused if it is
        older than the one stored."""
        current = self._groups.get(record.group_id)
        if current is not None and record.generation_id < current.generation_id:
            return (f"generation {record.generation_id} is older than the stored "
                    f"generation {current.generation_id}")
        self._groups[record.group_id] = record
        return None

    def forget(self, group_id: str) -> bool:
        return self._groups.pop(group_id, None) is not None

    def to_rows(self) -> list[list[Any]]:
        return [self._groups[g].to_row() for g in sorted(self._groups)]

    def load_rows(self, rows: Iterable[Any]) -> None:
        self._groups = {}
        for row in rows:
            record = StoredGroup.from_row(row)
            self._groups[record.group_id] = record
