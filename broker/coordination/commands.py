"""Metadata commands: plain records that travel through Raft as JSON-safe dicts.

A command carries everything its application needs (ids, the proposer's clock is stamped
beside it), so applying the same sequence on any node gives the same state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .group_records import StoredGroup, StoredMember


@dataclass(slots=True)
class RegisterBroker:
    KIND: ClassVar[str] = "register_broker"
    node_id: int
    host: str
    port: int
    rack: str | None = None
    raft_address: str | None = None
    # Every listener's advertised address, by listener name: [host, port]. host/port
    # above are the inter-broker listener's. Empty: host/port serve every client.
    endpoints: dict[str, list[Any]] = field(default_factory=dict)
    # How long this broker counts as alive after each heartbeat; None: the cluster's
    # broker.session.timeout.ms.
    session_timeout_ms: int | None = None


@dataclass(slots=True)
class BrokerHeartbeat:
    KIND: ClassVar[str] = "broker_heartbeat"
    node_id: int
    # The node lease this beat asks for: until then, every active segment the broker
    # leads counts as leased (leadership/leases.py). None: a plain heartbeat.
    lease_until_ms: int | None = None


@dataclass(slots=True)
class UnregisterBroker:
    KIND: ClassVar[str] = "unregister_broker"
    node_id: int


@dataclass(slots=True)
class CreateTopic:
    """num_partitions / replication_factor of -1 take the cluster defaults
    (``num.partitions`` / ``default.replication.factor``), as Kafka's CreateTopics does."""

    KIND: ClassVar[str] = "create_topic"
    name: str
    topic_id: bytes
    num_partitions: int = -1
    replication_factor: int = -1
    config: dict[str, str] = field(default_factory=dict)
    # Replica sets chosen by the client, one per partition (leader first); they replace
    # num_partitions and replication_factor, which must then be -1.
    assignments: list[list[int]] | None = None


@dataclass(slots=True)
class DeleteTopic:
    KIND: ClassVar[str] = "delete_topic"
    name: str


@dataclass(slots=True)
class CreatePartitions:
    KIND: ClassVar[str] = "create_partitions"
    name: str
    total_count: int
    # Replica sets of the new partitions, chosen by the client.
    assignments: list[list[int]] | None = None


@dataclass(slots=True)
class AlterTopicConfig:
    KIND: ClassVar[str] = "alter_topic_config"
    name: str
    set_configs: dict[str, str] = field(default_factory=dict)
    delete_configs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AlterClusterConfig:
    """Cluster-wide broker defaults (the config every broker and topic inherits)."""

    KIND: ClassVar[str] = "alter_cluster_config"
    set_configs: dict[str, str] = field(default_factory=dict)
    delete_configs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class OffsetEntry:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = None


@dataclass(slots=True)
class CommitOffsets:
    """One group's offsets for many partitions, applied as one Raft entry."""

    KIND: ClassVar[str] = "commit_offsets"
    group: str
    offsets: list[OffsetEntry]
    expire_ms: int | None = None


@dataclass(slots=True)
class DeleteOffsets:
    KIND: ClassVar[str] = "delete_offsets"
    group: str
    partitions: list[tuple[str, int]]


@dataclass(slots=True)
class DeleteGroupOffsets:
    KIND: ClassVar[str] = "delete_group_offsets"
    group: str


@dataclass(slots=True)
class StoreGroup:
    """A classic group's generation, members and assignments (group_records.py)."""

    KIND: ClassVar[str] = "store_group"
    group_id: str
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    members: list[StoredMember] = field(default_factory=list)

    def record(self) -> StoredGroup:
        return StoredGroup(self.group_id, self.generation_id, self.protocol_type,
                           self.protocol_name, self.leader_id, tuple(self.members))

    @classmethod
    def of(cls, record: StoredGroup) -> StoreGroup:
        return cls(record.group_id, record.generation_id, record.protocol_type,
                   record.protocol_name, record.leader_id, list(record.members))


@dataclass(slots=True)
class ForgetGroup:
    """Drop a group's stored membership (the group was deleted or went unused)."""

    KIND: ClassVar[str] = "forget_group"
    group_id: str


@dataclass(slots=True)
class ExpireOffsets:
    """Drops every committed offset whose expire time is at or before the command's time."""

    KIND: ClassVar[str] = "expire_offsets"


@dataclass(slots=True)
class AllocateProducerIds:
    KIND: ClassVar[str] = "allocate_producer_ids"
    node_id: int


@dataclass(slots=True)
class RollSegment:
    """Seal the active segment at end_offset and open the next one, only if the active
    segment is still the one the proposer saw (expected_epoch): two concurrent rolls of
    the same segment cannot both seal it."""

    KIND: ClassVar[str] = "roll_segment"
    topic: str
    partition: int
    expected_epoch: int
    end_offset: int
    # The sealing leader's idempotent-producer state at end_offset
    # (ProducerStateTable.snapshot()): where the next segment's replicas start from.
    producers: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class RenewLease:
    KIND: ClassVar[str] = "renew_lease"
    topic: str
    partition: int
    epoch: int
    node_id: int
    until_ms: int


@dataclass(slots=True)
class SetClusterId:
    """The cluster's id, set once: later proposals get the id already chosen."""

    KIND: ClassVar[str] = "set_cluster_id"
    cluster_id: str


@dataclass(slots=True)
class UpdateIsr:
    """The leader of the active segment reports which replicas are in sync."""

    KIND: ClassVar[str] = "update_isr"
    topic: str
    partition: int
    epoch: int
    node_id: int
    isr: list[int]


@dataclass(slots=True)
class ReassignLeader:
    """Replace a dead leader: seal its segment at end_offset (what the surviving
    replicas hold) and open the next one on a live node. Refused while the leader is
    alive or its lease unexpired, so a working leader is never fenced by it."""

    KIND: ClassVar[str] = "reassign_leader"
    topic: str
    partition: int
    expected_epoch: int
    end_offset: int
    # The in-sync follower that sealed at end_offset: it holds the whole segment, so it
    # leads the next one when it is alive (-1: let the state choose).
    proposer: int = -1
    # The proposer's idempotent-producer state at end_offset, as in RollSegment.
    producers: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class PlanCopies:
    """Assign copy targets to sealed segments below their replication factor, and
    replace targets that died (any node may propose it; planning is deterministic)."""

    KIND: ClassVar[str] = "plan_copies"


@dataclass(slots=True)
class SegmentCopied:
    """`node_id` holds a verified copy of the sealed segment of `epoch`, which ends at
    `end_offset`: it becomes one of the segment's replicas."""

    KIND: ClassVar[str] = "segment_copied"
    topic: str
    partition: int
    epoch: int
    node_id: int
    end_offset: int


@dataclass(slots=True)
class CreateAcls:
    """ACL bindings to store, each a row of AclBinding.to_row (broker/security/acl.py)."""

    KIND: ClassVar[str] = "create_acls"
    bindings: list[list[Any]]


@dataclass(slots=True)
class DeleteAcls:
    """Filters whose matching ACL bindings are removed, each an AclBindingFilter row."""

    KIND: ClassVar[str] = "delete_acls"
    filters: list[list[Any]]


@dataclass(slots=True)
class UpsertScramCredential:
    """A user's credential for one SCRAM mechanism (replacing any it had): only what the
    server side of SCRAM checks a login with, never the password."""

    KIND: ClassVar[str] = "upsert_scram_credential"
    user: str
    mechanism: str  # "SCRAM-SHA-256" or "SCRAM-SHA-512"
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@dataclass(slots=True)
class DeleteScramCredential:
    KIND: ClassVar[str] = "delete_scram_credential"
    user: str
    mechanism: str


Command = (
    RegisterBroker
    | BrokerHeartbeat
    | UnregisterBroker
    | CreateTopic
    | DeleteTopic
    | CreatePartitions
    | AlterTopicConfig
    | AlterClusterConfig
    | CommitOffsets
    | DeleteOffsets
    | DeleteGroupOffsets
    | StoreGroup
    | ForgetGroup
    | ExpireOffsets
    | AllocateProducerIds
    | RollSegment
    | RenewLease
    | UpdateIsr
    | SetClusterId
    | ReassignLeader
    | PlanCopies
    | SegmentCopied
    | CreateAcls
    | DeleteAcls
    | UpsertScramCredential
    | DeleteScramCredential
)

COMMAND_TYPES: dict[str, type] = {
    cls.KIND: cls
    for cls in (
        RegisterBroker,
        BrokerHeartbeat,
        UnregisterBroker,
        CreateTopic,
        DeleteTopic,
        CreatePartitions,
        AlterTopicConfig,
        AlterClusterConfig,
        CommitOffsets,
        DeleteOffsets,
        DeleteGroupOffsets,
        StoreGroup,
        ForgetGroup,
        ExpireOffsets,
        AllocateProducerIds,
        RollSegment,
        RenewLease,
        UpdateIsr,
        SetClusterId,
        ReassignLeader,
        PlanCopies,
        SegmentCopied,
        CreateAcls,
        DeleteAcls,
        UpsertScramCredential,
        DeleteScramCredential,
    )
}

# Commands whose second application leaves the same state (up to timestamps) and gives
# the caller an equally good answer, so a proposal with an unknown outcome may simply be
# proposed again. The others would answer a retry with a misleading refusal
# (TOPIC_ALREADY_EXISTS, FENCED_LEADER_EPOCH, ...): their callers must read the state.
REPEATABLE_KINDS: frozenset[str] = frozenset(
    {
        RegisterBroker.KIND,
        BrokerHeartbeat.KIND,
        AlterTopicConfig.KIND,
        AlterClusterConfig.KIND,
        CommitOffsets.KIND,
        StoreGroup.KIND,  # the same generation may be stored again
        ForgetGroup.KIND,
        ExpireOffsets.KIND,
        AllocateProducerIds.KIND,  # a lost block only wastes ids
        RenewLease.KIND,  # leases only grow
        CreateAcls.KIND,  # bindings are a set
        PlanCopies.KIND,
        SetClusterId.KIND,  # the first id applied stays; a repeat answers with it
        UpsertScramCredential.KIND,  # stores the same credential again
    }
)


def command_to_dict(command: Command) -> dict[str, Any]:
    """A JSON-safe dict: bytes become hex, nested records become dicts, tuples lists."""
    out: dict[str, Any] = {"kind": command.KIND}
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(command, CommitOffsets) and f.name == "offsets":
            value = [dataclasses.asdict(e) for e in value]
        elif isinstance(command, StoreGroup) and f.name == "members":
            value = [m.to_row() for m in value]
        elif isinstance(command, DeleteOffsets) and f.name == "partitions":
            value = [[t, p] for t, p in value]
        elif isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = [list(v) if isinstance(v, (list, tuple)) else v for v in value]
        out[f.name] = value
    return out


def command_from_dict(data: dict[str, Any]) -> Command:
    """Inverse of command_to_dict. Raises ValueError for an unknown kind or bad fields."""
    kind = data.get("kind")
    cls = COMMAND_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown metadata command kind {kind!r}")
    args = {k: v for k, v in data.items() if k != "kind"}
    try:
        if cls is CreateTopic:
            args["topic_id"] = bytes.fromhex(args["topic_id"])
        elif cls is UpsertScramCredential:
            for name in ("salt", "stored_key", "server_key"):
                args[name] = bytes.fromhex(args[name])
        elif cls is CommitOffsets:
            args["offsets"] = [OffsetEntry(**e) for e in args["offsets"]]
        elif cls is DeleteOffsets:
            args["partitions"] = [(t, p) for t, p in args["partitions"]]
        elif cls is StoreGroup:
            args["members"] = [StoredMember.from_row(m) for m in args["members"]]
        command: Command = cls(**args)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"malformed {kind} command: {exc}") from exc
    return command
