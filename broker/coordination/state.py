"""ClusterState: the replicated cluster-metadata state machine.

A plain deterministic class. Raft only decides the order of commands; ``apply`` is a
pure function of (state, command, time stamped by the proposer). Nothing here reads the
clock, the network or the disk, so a unit test drives it without Raft and two nodes fed
the same commands hold byte-identical snapshots.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from broker.security.scram import ScramCredential

from .acls import AclsCreated, AclsDeleted, AclTable
from .commands import (
    AllocateProducerIds,
    AlterClusterConfig,
    AlterTopicConfig,
    BrokerHeartbeat,
    Command,
    CommitOffsets,
    CreateAcls,
    CreatePartitions,
    CreateTopic,
    DeleteAcls,
    DeleteGroupOffsets,
    DeleteOffsets,
    DeleteScramCredential,
    DeleteTopic,
    ExpireOffsets,
    ForgetGroup,
    PlanCopies,
    ReassignLeader,
    RegisterBroker,
    RenewLease,
    RollSegment,
    SegmentCopied,
    SetClusterId,
    StoreGroup,
    UnregisterBroker,
    UpdateIsr,
    UpsertScramCredential,
    command_from_dict,
)
from .errors import MetadataError, Refusal
from .group_records import GroupTable, StoredGroup, record_problem
from .model import Broker, CommittedOffset, Partition, Segment, Topic
from .placement import next_leader, replicas_led_by, ring_after, round_robin_replicas
from .results import (
    Applied,
    BrokerRegistered,
    ClusterIdSet,
    GroupOffsetsDeleted,
    GroupStored,
    IsrUpdated,
    LeaseGranted,
    OffsetsResult,
    PartitionOutcome,
    ProducerIdBlock,
    SegmentRolled,
    TopicCreated,
    TopicDeleted,
)
from .resync_plan import forget_node, plan_copies
from .scram_credentials import CredentialKey, ScramCredentialTable, credential_problem

SNAPSHOT_FORMAT = 1
PRODUCER_ID_BLOCK_SIZE = 1000
# What a broker may register as its own session timeout.
MIN_SESSION_TIMEOUT_MS = 100
MAX_SESSION_TIMEOUT_MS = 3_600_000
MAX_TOPIC_NAME_LENGTH = 249
# Kafka's legal characters, matched with fullmatch: "$" would also match before a
# trailing newline, and "nl\n" would become a topic no client can name again.
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")

# Cluster-wide defaults; AlterClusterConfig stores overrides on top of these.
DEFAULT_CLUSTER_CONFIG: dict[str, str] = {
    "num.partitions": "1",
    "broker.session.timeout.ms": "9000",
    "offset.metadata.max.bytes": "4096",
    # A registered broker silent for this long no longer counts as holding its sealed
    # segments: they are copied to other live nodes, as for a removed node. 0: never.
    "dead.broker.replacement.ms": "900000",
}

Result = Any  # one of the records in results.py, or a Refusal
OffsetKey = tuple[str, int]  # (topic, partition)


def _refuse(error: MetadataError, message: str = "") -> Refusal:
    return Refusal(error, message)


class ClusterState:
    """Brokers, topics with their segment chains, committed offsets and producer ids.

    Readers get live records; they must not mutate them (the Raft wrapper hands the state
    out under its read lock).
    """

    def __init__(self) -> None:
        self.brokers: dict[int, Broker] = {}
        self.topics: dict[str, Topic] = {}
        self.cluster_config: dict[str, str] = {}
        # Chosen once, by the first node to start (Kafka's cluster id).
        self.cluster_id: str | None = None
        # group -> (topic, partition) -> offset
        self.offsets: dict[str, dict[OffsetKey, CommittedOffset]] = {}
        # Classic groups' generation, members and assignments, for the next coordinator.
        self.groups = GroupTable()
        self.next_producer_id = 0
        # (topic, partition) -> (epoch, base offset, producer rows): the idempotent-producer
        # state at the base of the active segment, from whoever sealed the one before. A
        # replica starting that segment takes it, so sequences continue and retries are
        # recognised even on a node that missed earlier segments. Only the active
        # segment's is kept.
        self.producers_at_base: dict[OffsetKey, tuple[int, int, list[Any]]] = {}
        self.acls = AclTable()
        self.scram = ScramCredentialTable()
        # Every successful command raises `version`; only changes a Metadata response can
        # show (brokers joining/leaving, topics, partitions, leaders, configs) raise
        # `topology_version`, so a cache keyed on it survives offset commits and leases.
        self.version = 0
        self.topology_version = 0
        # The latest proposer time seen. Proposers' clocks differ a little; taking the
        # maximum keeps the state's notion of time monotonic whatever order they arrive.
        self.clock_ms = 0
        self.placement_cursor = 0
        self._broker_epochs = 0
        self._handlers: dict[type, Callable[[Any], Result]] = {
            RegisterBroker: self._register_broker,
            BrokerHeartbeat: self._broker_heartbeat,
            UnregisterBroker: self._unregister_broker,
            CreateTopic: self._create_topic,
            DeleteTopic: self._delete_topic,
            CreatePartitions: self._create_partitions,
            AlterTopicConfig: self._alter_topic_config,
            AlterClusterConfig: self._alter_cluster_config,
            CommitOffsets: self._commit_offsets,
            DeleteOffsets: self._delete_offsets,
            DeleteGroupOffsets: self._delete_group_offsets,
            StoreGroup: self._store_group,
            ForgetGroup: self._forget_group,
            ExpireOffsets: self._expire_offsets,
            AllocateProducerIds: self._allocate_producer_ids,
            RollSegment: self._roll_segment,
            RenewLease: self._renew_lease,
            UpdateIsr: self._update_isr,
            SetClusterId: self._set_cluster_id,
            ReassignLeader: self._reassign_leader,
            PlanCopies: self._plan_copies,
            SegmentCopied: self._segment_copied,
            CreateAcls: self._create_acls,
            DeleteAcls: self._delete_acls,
            UpsertScramCredential: self._upsert_scram_credential,
            DeleteScramCredential: self._delete_scram_credential,
        }

    # ------------------------------------------------------------------ apply

    def apply(self, command: Command | dict[str, Any], now_ms: int) -> Result:
        """Apply one command stamped with its proposer's time; return its result or a
        Refusal. Malformed commands are refused, never raised: a bad entry in the Raft log
        must not stop a node from applying the entries after it."""
        if isinstance(command, dict):
            try:
                command = command_from_dict(command)
            except ValueError as exc:
                return _refuse(MetadataError.UNKNOWN_COMMAND, str(exc))
        handler = self._handlers.get(type(command))
        if handler is None:
            return _refuse(MetadataError.UNKNOWN_COMMAND, type(command).__name__)
        self.clock_ms = max(self.clock_ms, int(now_ms))
        try:
            result = handler(command)
        except (TypeError, ValueError, AttributeError) as exc:
            # Only a command built by hand with fields of the wrong type gets here (JSON
            # we encoded decodes to the right types). Handlers do everything that can fail
            # before they mutate, so the state is untouched.
            return _refuse(MetadataError.INVALID_REQUEST, f"{type(exc).__name__}: {exc}")
        if not isinstance(result, Refusal):
            self.version += 1
        return result

    def _touch_topology(self) -> None:
        self.topology_version += 1

    # ---------------------------------------------------------------- brokers

    def _register_broker(self, c: RegisterBroker) -> Result:
        if c.node_id < 0 or not c.host or not 0 < c.port < 65536:
            return _refuse(MetadataError.INVALID_REQUEST, "bad node id, host or port")
        endpoints = _endpoints(c.endpoints)
        if endpoints is None:
            return _refuse(MetadataError.INVALID_REQUEST, "bad listener endpoints")
        timeout = c.session_timeout_ms
        if timeout is not None and (type(timeout) is not int
                                    or not MIN_SESSION_TIMEOUT_MS <= timeout <= MAX_SESSION_TIMEOUT_MS):
            return _refuse(MetadataError.INVALID_REQUEST, f"bad session timeout {timeout!r}")
        self._broker_epochs += 1
        previous = self.brokers.get(c.node_id)
        self.brokers[c.node_id] = Broker(
            node_id=c.node_id,
            host=c.host,
            port=c.port,
            rack=c.rack,
            raft_address=c.raft_address,
            registered_ms=previous.registered_ms if previous else self.clock_ms,
            last_heartbeat_ms=self.clock_ms,
            broker_epoch=self._broker_epochs,
            endpoints=endpoints,
            session_timeout_ms=timeout,
            # The lease an earlier incarnation was granted still binds the cluster: a
            # restart must not let another node take its segments before it ends.
            lease_expiry_ms=previous.lease_expiry_ms if previous else 0,
        )
        self._touch_topology()
        return BrokerRegistered(c.node_id, self._broker_epochs)

    def _broker_heartbeat(self, c: BrokerHeartbeat) -> Result:
        broker = self.brokers.get(c.node_id)
        if broker is None:
            return _refuse(MetadataError.BROKER_ID_NOT_REGISTERED, f"broker {c.node_id}")
        if c.lease_until_ms is not None:
            if type(c.lease_until_ms) is not int:
                return _refuse(MetadataError.INVALID_REQUEST, f"bad lease deadline {c.lease_until_ms!r}")
            # A lease only grows: a delayed beat must not shorten one already granted.
            broker.lease_expiry_ms = max(broker.lease_expiry_ms, c.lease_until_ms)
        broker.last_heartbeat_ms = self.clock_ms
        return Applied(self.version + 1)

    def _unregister_broker(self, c: UnregisterBroker) -> Result:
        if self.brokers.pop(c.node_id, None) is None:
            return _refuse(MetadataError.BROKER_ID_NOT_REGISTERED, f"broker {c.node_id}")
        self._replace_follower_everywhere(c.node_id)
        forget_node(self.topics, c.node_id)
        self._plan_copies(PlanCopies())
        self._touch_topology()
        return Applied(self.version + 1)

    def _replace_follower_everywhere(self, gone: int, *, removed: bool = True) -> int:
        """A node's place as a follower of active segments goes to another live node,
        which copies the segment from its base (re-replication); it joins the in-sync
        set once caught up, which Metadata shows. Sealed segments keep the copies they
        have; a segment the node led fails over to an in-sync follower. Returns how many
        segments changed.

        `removed`: the node was unregistered, an operator's decision: client-chosen
        replica sets drop it, and a segment with no spare node to take its place goes
        on without it. Otherwise it has only been silent for dead.broker.replacement.ms:
        its place is handed on only where another node can take it, and chosen replica
        sets keep it for when it returns."""
        live = self.live_broker_ids(self.clock_ms)
        racks = self._racks()
        changed = 0
        for topic in self.topics.values():
            for p in topic.partitions:
                if removed and p.assigned is not None and gone in p.assigned:
                    p.assigned = [r for r in p.assigned if r != gone]
                active = p.active
                if gone not in active.replicas or active.leader == gone:
                    continue
                spare = [n for n in ring_after(live, active.leader, len(live))
                         if n not in active.replicas]
                if not spare and not removed:
                    continue
                kept = [r for r in active.replicas if r != gone]
                if spare:
                    used = {racks.get(r) for r in kept}
                    pick = next((n for n in spare if racks.get(n) is not None
                                 and racks.get(n) not in used), spare[0])
                    kept.append(pick)
                    if removed and p.assigned is not None and pick not in p.assigned:
                        p.assigned.append(pick)
                active.replicas = kept
                if active.isr is not None:
                    active.isr = [r for r in active.isr if r != gone]
                changed += 1
        return changed

    # ----------------------------------------------------------------- topics

    def _create_topic(self, c: CreateTopic) -> Result:
        refusal = self._check_topic_name(c.name)
        if refusal is not None:
            return refusal
        if c.name in self.topics:
            return _refuse(MetadataError.TOPIC_ALREADY_EXISTS, f"topic '{c.name}' already exists")
        if len(c.topic_id) != 16 or c.topic_id == bytes(16):
            return _refuse(MetadataError.INVALID_REQUEST, "topic id must be 16 non-zero bytes")
        if any(t.topic_id == c.topic_id for t in self.topics.values()):
            return _refuse(MetadataError.INVALID_REQUEST, "topic id already in use")
        refusal = self._check_config(c.config)
        if refusal is not None:
            return refusal
        live = self.live_broker_ids(self.clock_ms)
        if c.assignments is not None:
            if c.num_partitions != -1 or c.replication_factor != -1:
                return _refuse(MetadataError.INVALID_REQUEST,
                               "assignments replace num_partitions and replication_factor")
            refusal = self._check_assignments(c.assignments, None, live)
            if refusal is not None:
                return refusal
            topic = Topic(c.name, bytes(c.topic_id), len(c.assignments[0]), dict(c.config), [])
            self._add_partitions(topic, len(c.assignments), live, c.assignments)
            self.topics[c.name] = topic
            self._touch_topology()
            return TopicCreated(c.name, topic.topic_id, len(c.assignments), topic.replication_factor)
        partitions = c.num_partitions
        if partitions == -1:
            partitions = int(self.config_value("num.partitions"))
        if partitions < 1:
            return _refuse(MetadataError.INVALID_PARTITIONS, "number of partitions must be >= 1")
        factor = c.replication_factor
        if factor == -1:
            factor = self.default_replication_factor(len(live))
        if factor < 1 or factor > len(live):
            return _refuse(
                MetadataError.INVALID_REPLICATION_FACTOR,
                f"replication factor {factor} with {len(live)} live brokers",
            )
        topic = Topic(c.name, bytes(c.topic_id), factor, dict(c.config), [])
        self._add_partitions(topic, partitions, live)
        self.topics[c.name] = topic
        self._touch_topology()
        return TopicCreated(c.name, topic.topic_id, partitions, factor)

    def _add_partitions(
        self, topic: Topic, total: int, live: list[int], assignments: list[list[int]] | None = None,
    ) -> None:
        for n, index in enumerate(range(len(topic.partitions), total)):
            if assignments is not None:
                replicas = [int(r) for r in assignments[n]]
            else:
                replicas = round_robin_replicas(
                    live, self.placement_cursor, topic.replication_factor, self._racks()
                )
                self.placement_cursor += 1
            segment = Segment(
                epoch=0, base_offset=0, end_offset=None, leader=replicas[0], replicas=replicas
            )
            assigned = None if assignments is None else list(replicas)
            topic.partitions.append(Partition(index, [segment], assigned))

    @staticmethod
    def _check_assignments(
        assignments: object, factor: int | None, live: list[int]
    ) -> Refusal | None:
        """Kafka's rules for client-chosen replica sets: the same number of replicas for
        every partition (the topic's, when it exists), no node twice, every node live."""
        if not isinstance(assignments, list) or not assignments or not all(
            isinstance(a, list) and a and all(isinstance(n, int) for n in a) for a in assignments
        ):
            return _refuse(MetadataError.INVALID_REPLICA_ASSIGNMENT, "assignments must be non-empty lists of node ids")
        sizes = {len(a) for a in assignments}
        if len(sizes) != 1 or (factor is not None and sizes != {factor}):
            return _refuse(MetadataError.INVALID_REPLICA_ASSIGNMENT,
                           "every partition needs the same number of replicas"
                           + ("" if factor is None else f" as the topic ({factor})"))
        for index, replicas in enumerate(assignments):
            if len(set(replicas)) != len(replicas):
                return _refuse(MetadataError.INVALID_REPLICA_ASSIGNMENT,
                               f"duplicate brokers in the assignment of partition {index}")
            unknown = sorted(set(replicas) - set(live))
            if unknown:
                return _refuse(MetadataError.INVALID_REPLICA_ASSIGNMENT,
                               f"unknown or dead brokers {unknown} in the assignment of partition {index}")
        return None

    def _delete_topic(self, c: DeleteTopic) -> Result:
        topic = self.topics.pop(c.name, None)
        if topic is None:
            return _refuse(MetadataError.UNKNOWN_TOPIC_OR_PARTITION, f"topic '{c.name}'")
        for key in [k for k in self.producers_at_base if k[0] == c.name]:
            del self.producers_at_base[key]
        # Offsets of a deleted topic would resurface if a topic of the same name came back.
        for group in list(self.offsets):
            committed = self.offsets[group]
            for key in [k for k in committed if k[0] == c.name]:
                del committed[key]
            if not committed:
                del self.offsets[group]
        self._touch_topology()
        return TopicDeleted(c.name, topic.topic_id)

    def _create_partitions(self, c: CreatePartitions) -> Result:
        topic = self.topics.get(c.name)
        if topic is None:
            return _refuse(MetadataError.UNKNOWN_TOPIC_OR_PARTITION, f"topic '{c.name}'")
        if c.total_count <= len(topic.partitions):
            return _refuse(
                MetadataError.INVALID_PARTITIONS,
                f"topic has {len(topic.partitions)} partitions; {c.total_count} is not more",
            )
        live = self.live_broker_ids(self.clock_ms)
        if c.assignments is not None:
            refusal = self._check_assignments(c.assignments, topic.replication_factor, live)
            if refusal is None and len(c.assignments) != c.total_count - len(topic.partitions):
                refusal = _refuse(MetadataError.INVALID_REPLICA_ASSIGNMENT,
                                  f"{len(c.assignments)} assignments for "
                                  f"{c.total_count - len(topic.partitions)} new partitions")
            if refusal is not None:
                return refusal
        elif len(live) < topic.replication_factor:
            return _refuse(
                MetadataError.INVALID_REPLICATION_FACTOR,
                f"replication factor {topic.replication_factor} with {len(live)} live brokers",
            )
        self._add_partitions(topic, c.total_count, live, c.assignments)
        self._touch_topology()
        return Applied(self.version + 1)

    def _alter_topic_config(self, c: AlterTopicConfig) -> Result:
        topic = self.topics.get(c.name)
        if topic is None:
            return _refuse(MetadataError.UNKNOWN_TOPIC_OR_PARTITION, f"topic '{c.name}'")
        refusal = self._check_config(c.set_configs, c.delete_configs)
        if refusal is not None:
            return refusal
        topic.config.update(c.set_configs)
        for name in c.delete_configs:
            topic.config.pop(name, None)
        self._touch_topology()
        return Applied(self.version + 1)

    def _alter_cluster_config(self, c: AlterClusterConfig) -> Result:
        refusal = self._check_config(c.set_configs, c.delete_configs)
        if refusal is not None:
            return refusal
        # The defaults this state machine itself reads must stay integers, or every later
        # command that reads them would be refused.
        for name in (*DEFAULT_CLUSTER_CONFIG, "default.replication.factor"):
            value = c.set_configs.get(name)
            minimum = 0 if name in ("offset.metadata.max.bytes", "dead.broker.replacement.ms") else 1
            if value is not None and (not value.isdigit() or int(value) < minimum):
                return _refuse(
                    MetadataError.INVALID_CONFIG, f"{name} must be an integer >= {minimum}"
                )
        self.cluster_config.update(c.set_configs)
        for name in c.delete_configs:
            self.cluster_config.pop(name, None)
        self._touch_topology()
        return Applied(self.version + 1)

    @staticmethod
    def _check_topic_name(name: object) -> Refusal | None:
        if not isinstance(name, str) or not name or name in (".", ".."):
            return _refuse(MetadataError.INVALID_TOPIC_EXCEPTION, f"illegal topic name {name!r}")
        if len(name) > MAX_TOPIC_NAME_LENGTH or not _LEGAL_TOPIC_NAME.fullmatch(name):
            return _refuse(MetadataError.INVALID_TOPIC_EXCEPTION, f"illegal topic name {name!r}")
        return None

    @staticmethod
    def _check_config(set_configs: object, delete_configs: Iterable[object] = ()) -> Refusal | None:
        if not isinstance(set_configs, dict):
            return _refuse(MetadataError.INVALID_CONFIG, "configs must be a mapping")
        for name, value in set_configs.items():
            if not isinstance(name, str) or not name or not isinstance(value, str):
                return _refuse(MetadataError.INVALID_CONFIG, f"config {name!r}={value!r}")
        for name in delete_configs:
            if not isinstance(name, str) or not name:
                return _refuse(MetadataError.INVALID_CONFIG, f"config {name!r}")
        return None

    # ---------------------------------------------------------------- offsets

    def _commit_offsets(self, c: CommitOffsets) -> Result:
        """Kafka answers an OffsetCommit per partition, so a bad partition is refused on
        its own while the rest of the batch commits, all in this one entry."""
        limit = int(self.config_value("offset.metadata.max.bytes"))
        outcomes: list[PartitionOutcome] = []
        accepted: list[tuple[OffsetKey, CommittedOffset]] = []
        for e in c.offsets:
            error: MetadataError | None = None
            if self.partition(e.topic, e.partition) is None:
                error = MetadataError.UNKNOWN_TOPIC_OR_PARTITION
            elif e.metadata is not None and len(e.metadata.encode()) > limit:
                error = MetadataError.OFFSET_METADATA_TOO_LARGE
            elif e.offset < -1:
                error = MetadataError.INVALID_REQUEST
            outcomes.append(PartitionOutcome(e.topic, e.partition, error))
            if error is None:
                committed = CommittedOffset(
                    e.offset, e.leader_epoch, e.metadata, self.clock_ms, c.expire_ms
                )
                accepted.append(((e.topic, e.partition), committed))
        if accepted:
            group = self.offsets.setdefault(c.group, {})
            group.update(accepted)
        return OffsetsResult(c.group, tuple(outcomes))

    def _delete_offsets(self, c: DeleteOffsets) -> Result:
        committed = self.offsets.get(c.group)
        if committed is None:
            return _refuse(MetadataError.GROUP_ID_NOT_FOUND, f"group '{c.group}' has no offsets")
        outcomes = []
        for topic, partition in c.partitions:
            if self.partition(topic, partition) is None:
                outcomes.append(
                    PartitionOutcome(topic, partition, MetadataError.UNKNOWN_TOPIC_OR_PARTITION)
                )
                continue
            committed.pop((topic, partition), None)
            outcomes.append(PartitionOutcome(topic, partition))
        if not committed:
            del self.offsets[c.group]
        return OffsetsResult(c.group, tuple(outcomes))

    def _delete_group_offsets(self, c: DeleteGroupOffsets) -> Result:
        committed = self.offsets.pop(c.group, None)
        if committed is None:
            return _refuse(MetadataError.GROUP_ID_NOT_FOUND, f"group '{c.group}' has no offsets")
        return GroupOffsetsDeleted(c.group, len(committed))

    def _store_group(self, c: StoreGroup) -> Result:
        record = c.record()
        problem = record_problem(record)
        if problem is not None:
            return _refuse(MetadataError.INVALID_REQUEST, f"group {c.group_id!r}: {problem}")
        older = self.groups.store(record)
        if older is not None:
            return _refuse(MetadataError.ILLEGAL_GENERATION, f"group {c.group_id!r}: {older}")
        return GroupStored(record.group_id, record.generation_id)

    def _forget_group(self, c: ForgetGroup) -> Result:
        if not isinstance(c.group_id, str):
            return _refuse(MetadataError.INVALID_REQUEST, "bad group id")
        self.groups.forget(c.group_id)
        return GroupStored(c.group_id, -1)

    def _expire_offsets(self, c: ExpireOffsets) -> Result:
        removed = 0
        for group in list(self.offsets):
            committed = self.offsets[group]
            for key in [
                k
                for k, v in committed.items()
                if v.expire_ms is not None and v.expire_ms <= self.clock_ms
            ]:
                del committed[key]
                removed += 1
            if not committed:
                del self.offsets[group]
        return GroupOffsetsDeleted("", removed)

    # ------------------------------------------------------------ producer ids

    def _allocate_producer_ids(self, c: AllocateProducerIds) -> Result:
        if c.node_id not in self.brokers:
            return _refuse(MetadataError.BROKER_ID_NOT_REGISTERED, f"broker {c.node_id}")
        block = ProducerIdBlock(c.node_id, self.next_producer_id, PRODUCER_ID_BLOCK_SIZE)
        self.next_producer_id += PRODUCER_ID_BLOCK_SIZE
        return block

    # --------------------------------------------------------------- segments

    def _active_for_change(self, topic: str, partition: int, epoch: int) -> Partition | Refusal:
        p = self.partition(topic, partition)
        if p is None:
            return _refuse(MetadataError.UNKNOWN_TOPIC_OR_PARTITION, f"{topic}-{partition}")
        if epoch < p.leader_epoch:
            return _refuse(
                MetadataError.FENCED_LEADER_EPOCH,
                f"{topic}-{partition}: epoch {epoch} is sealed; active epoch is {p.leader_epoch}",
            )
        if epoch > p.leader_epoch:
            return _refuse(
                MetadataError.UNKNOWN_LEADER_EPOCH,
                f"{topic}-{partition}: epoch {epoch} is ahead of active epoch {p.leader_epoch}",
            )
        return p

    def _seal_and_open(
        self, topic: str, p: Partition, end_offset: int, live: list[int], preferred: int = -1,
        producers: list[Any] | None = None,
    ) -> Result:
        active = p.active
        if producers is not None and not isinstance(producers, list):
            return _refuse(MetadataError.INVALID_REQUEST, "producers must be a list")
        if end_offset < active.base_offset:
            return _refuse(
                MetadataError.INVALID_REQUEST,
                f"end offset {end_offset} is below the segment's base offset {active.base_offset}",
            )
        if not live:
            return _refuse(
                MetadataError.BROKER_NOT_AVAILABLE, "no live broker to lead the next segment"
            )
        load = self._leader_load(exclude=(topic, p.index))
        # A client-chosen replica set keeps the partition on its nodes while any is alive;
        # with all of them down, any live node takes the next segment, so writes go on.
        pool = [n for n in live if n in p.assigned] if p.assigned else live
        pool = pool or live
        # Leadership stays within the segment's in-sync replicas when one is alive: they
        # hold its data and its producers' sequences, so the next leader continues them.
        in_sync = [n for n in active.in_sync if n in live]
        if preferred in in_sync:
            leader = preferred
        else:
            leader = next_leader(in_sync if len(active.replicas) > 1 and in_sync else pool,
                                 active.leader, load)
        factor = self.topics[topic].replication_factor
        replicas = replicas_led_by(pool, leader, factor, self._racks())
        active.end_offset = end_offset
        active.lease_holder = None
        active.lease_expiry_ms = 0
        new = Segment(
            epoch=active.epoch + 1,
            base_offset=end_offset,
            end_offset=None,
            leader=leader,
            replicas=replicas,
        )
        p.segments.append(new)
        self.producers_at_base[(topic, p.index)] = (new.epoch, end_offset, list(producers or []))
        self._touch_topology()
        return SegmentRolled(
            topic, p.index, active.epoch, end_offset, new.epoch, leader, tuple(replicas)
        )

    def _roll_segment(self, c: RollSegment) -> Result:
        p = self._active_for_change(c.topic, c.partition, c.expected_epoch)
        if isinstance(p, Refusal):
            return p
        return self._seal_and_open(c.topic, p, c.end_offset, self.placeable_broker_ids(self.clock_ms),
                                   producers=c.producers)

    def _reassign_leader(self, c: ReassignLeader) -> Result:
        p = self._active_for_change(c.topic, c.partition, c.expected_epoch)
        if isinstance(p, Refusal):
            return p
        active = p.active
        if not self.leader_replaceable(active, self.clock_ms):
            return _refuse(
                MetadataError.LEADER_STILL_ALIVE,
                f"leader {active.leader} of {c.topic}-{c.partition} is alive or holds its lease",
            )
        live = [n for n in self.placeable_broker_ids(self.clock_ms) if n != active.leader]
        return self._seal_and_open(c.topic, p, c.end_offset, live, c.proposer, c.producers)

    def _led_by(self, topic: str, partition: int, epoch: int, node_id: int) -> Segment | Refusal:
        """The active segment of `epoch`, if `node_id` leads it."""
        p = self._active_for_change(topic, partition, epoch)
        if isinstance(p, Refusal):
            return p
        if node_id != p.active.leader:
            return _refuse(
                MetadataError.NOT_LEADER_OR_FOLLOWER,
                f"node {node_id} does not lead {topic}-{partition} epoch {epoch}",
            )
        return p.active

    def _renew_lease(self, c: RenewLease) -> Result:
        active = self._led_by(c.topic, c.partition, c.epoch, c.node_id)
        if isinstance(active, Refusal):
            return active
        # A lease only grows: a delayed renewal must not shorten one already granted.
        expiry = max(active.lease_expiry_ms, int(c.until_ms))
        active.lease_holder = c.node_id
        active.lease_expiry_ms = expiry
        return LeaseGranted(c.topic, c.partition, active.epoch, c.node_id, active.lease_expiry_ms)

    def _plan_copies(self, _c: PlanCopies) -> Result:
        counted = self.counted_holders(self.clock_ms)
        # A follower silent for dead.broker.replacement.ms hands its place in active
        # segments on, as its sealed segments are copied elsewhere below.
        moved = sum(self._replace_follower_everywhere(n, removed=False)
                    for n in sorted(self.brokers) if n not in counted)
        plan_copies(self.topics, counted, self.live_broker_ids(self.clock_ms), self._racks())
        if moved:
            self._touch_topology()
        return Applied(self.version + 1)

    def _segment_copied(self, c: SegmentCopied) -> Result:
        p = self.partition(c.topic, c.partition)
        seg = None if p is None else next((s for s in p.segments if s.epoch == c.epoch), None)
        if seg is None or not seg.sealed:
            return _refuse(MetadataError.UNKNOWN_TOPIC_OR_PARTITION,
                           f"{c.topic}-{c.partition} has no sealed segment of epoch {c.epoch}")
        if seg.end_offset != c.end_offset:
            return _refuse(MetadataError.INVALID_REQUEST,
                           f"segment of epoch {c.epoch} ends at {seg.end_offset}, not {c.end_offset}")
        if c.node_id not in seg.copying:
            return _refuse(MetadataError.NOT_LEADER_OR_FOLLOWER,
                           f"node {c.node_id} is not copying {c.topic}-{c.partition} epoch {c.epoch}")
        seg.copying = [n for n in seg.copying if n != c.node_id]
        if c.node_id not in seg.replicas:
            seg.replicas = [*seg.replicas, c.node_id]
        if seg.isr is not None and c.node_id not in seg.isr:
            seg.isr = sorted([*seg.isr, c.node_id])
        self._touch_topology()
        return Applied(self.version + 1)

    def _set_cluster_id(self, c: SetClusterId) -> Result:
        if self.cluster_id is None:
            if not c.cluster_id:
                return _refuse(MetadataError.INVALID_REQUEST, "empty cluster id")
            self.cluster_id = c.cluster_id
            self._touch_topology()
        # Every node proposes its candidate at start; the first one applied wins.
        return ClusterIdSet(self.cluster_id)

    def _update_isr(self, c: UpdateIsr) -> Result:
        active = self._led_by(c.topic, c.partition, c.epoch, c.node_id)
        if isinstance(active, Refusal):
            return active
        isr = sorted(set(c.isr))
        if active.leader not in isr or not set(isr) <= set(active.replicas):
            return _refuse(
                MetadataError.INVALID_REQUEST,
                f"in-sync set {isr} must hold the leader and only replicas of {active.replicas}",
            )
        active.isr = isr
        self._touch_topology()
        return IsrUpdated(c.topic, c.partition, active.epoch, tuple(isr))

    def _racks(self) -> dict[int, str | None]:
        return {n: b.rack for n, b in self.brokers.items()}

    def _leader_load(self, exclude: OffsetKey) -> dict[int, int]:
        load: dict[int, int] = {}
        for topic in self.topics.values():
            for p in topic.partitions:
                if (topic.name, p.index) != exclude:
                    load[p.leader] = load.get(p.leader, 0) + 1
        return load

    # ------------------------------------------------------------------- acls

    def _create_acls(self, c: CreateAcls) -> Result:
        if not isinstance(c.bindings, list):
            return _refuse(MetadataError.INVALID_REQUEST, "bindings must be a list")
        # Metadata answers depend on what the client may describe.
        self._touch_topology()
        return AclsCreated(self.acls.create(c.bindings))

    def _delete_acls(self, c: DeleteAcls) -> Result:
        if not isinstance(c.filters, list):
            return _refuse(MetadataError.INVALID_REQUEST, "filters must be a list")
        self._touch_topology()
        return AclsDeleted(self.acls.delete(c.filters))

    # ------------------------------------------------------- scram credentials

    def _upsert_scram_credential(self, c: UpsertScramCredential) -> Result:
        credential = ScramCredential(c.salt, c.stored_key, c.server_key, c.iterations)
        problem = credential_problem(c.user, c.mechanism, credential)
        if problem is not None:
            return _refuse(MetadataError(problem[0]), problem[1])
        self.scram.upsert(c.user, c.mechanism, credential)
        return Applied(self.version + 1)

    def _delete_scram_credential(self, c: DeleteScramCredential) -> Result:
        problem = credential_problem(c.user, c.mechanism)
        if problem is not None:
            return _refuse(MetadataError(problem[0]), problem[1])
        if not self.scram.delete(c.user, c.mechanism):
            return _refuse(MetadataError.RESOURCE_NOT_FOUND,
                           "Attempt to delete a user credential that does not exist")
        return Applied(self.version + 1)

    # ---------------------------------------------------------------- queries

    def scram_credential(self, user: str, mechanism: str) -> ScramCredential | None:
        """The user's credential for the mechanism: what a SCRAM login checks. Safe
        without the metadata lock (it reads the table's published mapping)."""
        return self.scram.published.get((user, mechanism))

    def scram_credentials(self) -> Mapping[CredentialKey, ScramCredential]:
        """Every stored credential by (user, mechanism); read-only and never changed in
        place, so it may be read without the metadata lock."""
        return self.scram.published

    def config_value(self, name: str) -> str:
        return self.cluster_config.get(name, DEFAULT_CLUSTER_CONFIG.get(name, ""))

    def default_replication_factor(self, live_brokers: int) -> int:
        """default.replication.factor when set; otherwise min(3, live brokers), so a
        cluster's topics survive the loss of a node without anyone asking."""
        configured = self.cluster_config.get("default.replication.factor")
        return int(configured) if configured else max(1, min(3, live_brokers))

    def session_timeout_ms(self) -> int:
        return int(self.config_value("broker.session.timeout.ms"))

    def broker_alive(self, node_id: int, now_ms: int) -> bool:
        broker = self.brokers.get(node_id)
        return broker is not None and broker.alive(now_ms, self.session_timeout_ms())

    def live_broker_ids(self, now_ms: int) -> list[int]:
        timeout = self.session_timeout_ms()
        return sorted(n for n, b in self.brokers.items() if b.alive(now_ms, timeout))

    def counted_holders(self, now_ms: int) -> dict[int, Broker]:
        """The registered brokers whose copies of sealed segments count towards their
        replication factor: all but those silent for dead.broker.replacement.ms, whose
        segments are copied elsewhere (resync_plan) as if they had been removed. One
        that comes back counts again; the extra copies made meanwhile stay."""
        delay = int(self.config_value("dead.broker.replacement.ms"))
        if delay <= 0:
            return self.brokers
        return {n: b for n, b in self.brokers.items() if now_ms < b.last_heartbeat_ms + delay}

    def placeable_broker_ids(self, now_ms: int) -> list[int]:
        """Live brokers a new segment may be placed on: those taking node leases must
        hold one, since a lapsed node lease means a dead or cut-off node well before
        the session timeout says so. When that leaves none (every lease lapsed in a
        Raft election), the live brokers."""
        live = self.live_broker_ids(now_ms)
        leased = [n for n in live
                  if self.brokers[n].lease_expiry_ms == 0 or self.brokers[n].lease_expiry_ms > now_ms]
        return leased or live

    def live_brokers(self, now_ms: int) -> list[Broker]:
        return [self.brokers[n] for n in self.live_broker_ids(now_ms)]

    def topic(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: bytes) -> Topic | None:
        return next((t for t in self.topics.values() if t.topic_id == topic_id), None)

    def partition(self, topic: str, partition: int) -> Partition | None:
        t = self.topics.get(topic)
        if t is None or not isinstance(partition, int) or not 0 <= partition < len(t.partitions):
            return None
        return t.partitions[partition]

    def leader_for(self, topic: str, partition: int) -> int | None:
        p = self.partition(topic, partition)
        return None if p is None else p.leader

    def active_segment(self, topic: str, partition: int) -> Segment | None:
        p = self.partition(topic, partition)
        return None if p is None else p.active

    def producers_at(self, topic: str, partition: int, epoch: int, base_offset: int) -> list[Any] | None:
        """The producer rows the segment of `epoch` starts from, if the metadata has them
        (only the active segment's are kept; none for a partition's first segment)."""
        found = self.producers_at_base.get((topic, partition))
        if found is None or found[0] != epoch or found[1] != base_offset:
            return None
        return found[2]

    def segment_for_offset(self, topic: str, partition: int, offset: int) -> Segment | None:
        p = self.partition(topic, partition)
        return None if p is None else p.segment_for_offset(offset)

    def leader_replaceable(self, segment: Segment, now_ms: int) -> bool:
        """Whether another node may take over `segment` (ReassignLeader) at now_ms: its
        segment lease has run out, and so has its leader's node lease. A leader whose
        heartbeats never carried a node lease must be dead by its session timeout as
        well; one that takes node leases is dead for this purpose once its lease ends,
        because it renews that lease with every heartbeat."""
        if segment.lease_expiry_ms > now_ms:
            return False
        leader = self.brokers.get(segment.leader)
        if leader is None:
            return True
        if leader.lease_expiry_ms > 0:
            return leader.lease_expiry_ms <= now_ms
        return not leader.alive(now_ms, self.session_timeout_ms())

    def holds_lease(
        self, topic: str, partition: int, node_id: int, epoch: int, now_ms: int
    ) -> bool:
        """Write fencing: may `node_id` append to the active segment of `epoch` at now_ms?"""
        seg = self.active_segment(topic, partition)
        return (
            seg is not None
            and seg.epoch == epoch
            and seg.leader == node_id
            and seg.lease_holder == node_id
            and now_ms < seg.lease_expiry_ms
        )

    def committed_offsets(self, group: str) -> dict[OffsetKey, CommittedOffset]:
        return dict(self.offsets.get(group, {}))

    def committed_offset(self, group: str, topic: str, partition: int) -> CommittedOffset | None:
        return self.offsets.get(group, {}).get((topic, partition))

    def groups_with_offsets(self) -> list[str]:
        return sorted(self.offsets)

    def stored_group(self, group_id: str) -> StoredGroup | None:
        return self.groups.get(group_id)

    def stored_group_ids(self) -> list[str]:
        return self.groups.ids()

    # --------------------------------------------------------------- snapshot

    def to_snapshot(self) -> bytes:
        """Canonical JSON: equal states give equal bytes (keys sorted, lists ordered)."""
        body = {
            "format": SNAPSHOT_FORMAT,
            "version": self.version,
            "topology_version": self.topology_version,
            "clock_ms": self.clock_ms,
            "placement_cursor": self.placement_cursor,
            "broker_epochs": self._broker_epochs,
            "next_producer_id": self.next_producer_id,
            "cluster_id": self.cluster_id,
            "cluster_config": self.cluster_config,
            "brokers": [self.brokers[n].to_dict() for n in sorted(self.brokers)],
            "topics": [self.topics[n].to_dict() for n in sorted(self.topics)],
            "offsets": [
                [group, topic, partition, committed.to_dict()]
                for group in sorted(self.offsets)
                for (topic, partition), committed in sorted(self.offsets[group].items())
            ],
            "groups": self.groups.to_rows(),
            "acls": self.acls.to_rows(),
            "scram_credentials": self.scram.to_rows(),
            "producers_at_base": [
                [topic, partition, *self.producers_at_base[(topic, partition)]]
                for topic, partition in sorted(self.producers_at_base)
            ],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def load_snapshot(self, data: bytes) -> None:
        """Replace this state's contents in place (the Raft wrapper and the broker keep
        references to this object)."""
        body = json.loads(data)
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported metadata snapshot format {body.get('format')!r}")
        brokers = {b["node_id"]: Broker.from_dict(b) for b in body["brokers"]}
        topics = {t["name"]: Topic.from_dict(t) for t in body["topics"]}
        offsets: dict[str, dict[OffsetKey, CommittedOffset]] = {}
        for group, topic, partition, committed in body["offsets"]:
            offsets.setdefault(group, {})[(topic, partition)] = CommittedOffset.from_dict(committed)
        self.brokers, self.topics, self.offsets = brokers, topics, offsets
        self.cluster_config = dict(body["cluster_config"])
        self.version = body["version"]
        self.topology_version = body["topology_version"]
        self.clock_ms = body["clock_ms"]
        self.placement_cursor = body["placement_cursor"]
        self._broker_epochs = body["broker_epochs"]
        self.next_producer_id = body["next_producer_id"]
        self.cluster_id = body.get("cluster_id")
        self.groups.load_rows(body.get("groups", []))
        self.acls.load_rows(body.get("acls", []))
        self.scram.load_rows(body.get("scram_credentials", []))
        self.producers_at_base = {
            (topic, partition): (epoch, base, rows)
            for topic, partition, epoch, base, rows in body.get("producers_at_base", [])
        }

    @classmethod
    def from_snapshot(cls, data: bytes) -> ClusterState:
        state = cls()
        state.load_snapshot(data)
        return state


def _endpoints(raw: object) -> dict[str, tuple[str, int]] | None:
    """RegisterBroker's endpoints, checked: {name: [host, port]}; None if malformed."""
    if not isinstance(raw, dict) or len(raw) > 64:
        return None
    endpoints: dict[str, tuple[str, int]] = {}
    for name, address in raw.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            return None
        if not isinstance(address, (list, tuple)) or len(address) != 2:
            return None
        host, port = address
        if not isinstance(host, str) or not host or len(host) > 255:
            return None
        if type(port) is not int or not 0 < port < 65536:
            return None
        endpoints[name] = (host, port)
    return endpoints
