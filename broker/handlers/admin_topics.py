"""CreateTopics, DeleteTopics and CreatePartitions: topic changes through Raft, checked
here first so that validate_only answers exactly what a real request would."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broker.coordination.commands import CreatePartitions, CreateTopic, DeleteTopic
from broker.coordination.results import TopicCreated
from broker.coordination.state import ClusterState
from broker.handlers.admin_config_catalog import (
    check_topic_overrides,
    describe_topic_configs,
    effective_num_partitions,
    effective_replication_factor,
)
from broker.handlers.admin_proposals import propose_within
from broker.handlers.metadata import now_ms
from broker.handlers.pacing import Pacer
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import cluster_allowed, topic_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


@dataclass(slots=True)
class TopicPlan:
    """A CreateTopics entry after its checks: the error, or what would be created."""

    name: str
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict[str, str] = field(default_factory=dict)
    # Replica sets the client chose, one per partition (leader first).
    assignments: list[list[int]] | None = None

    def refuse(self, error: ErrorCode, message: str) -> TopicPlan:
        self.error, self.message = error, message
        return self


# Kafka's controller refuses more partitions than this in one request ("Excessively
# large number of partitions per request."); a count is a client's number, and every
# partition is an entry the metadata must create and every node must apply.
MAX_PARTITIONS_PER_REQUEST = 10_000


def _too_many_partitions(count: int) -> str | None:
    if count > MAX_PARTITIONS_PER_REQUEST:
        return (f"Excessively large number of partitions per request: {count}, "
                f"at most {MAX_PARTITIONS_PER_REQUEST}.")
    return None


def plan_topic(node: Node, topic: Any) -> TopicPlan:
    plan = TopicPlan(topic.name)
    refusal = ClusterState._check_topic_name(topic.name)
    if refusal is not None:
        return plan.refuse(ErrorCode.INVALID_TOPIC_EXCEPTION, refusal.message)
    # The metadata lock is not reentrant, and the config helpers below take it: read
    # what is needed here and let go.
    with node.metadata() as state:
        exists = state.topic(topic.name) is not None
        live = state.live_broker_ids(now_ms())
    if exists:
        return plan.refuse(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists.")
    assignments = sorted(topic.assignments or [], key=lambda a: a.partition_index)
    if assignments:
        if topic.num_partitions != -1 or topic.replication_factor != -1:
            return plan.refuse(
                ErrorCode.INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set.",
            )
        if (too_many := _too_many_partitions(len(assignments))) is not None:
            return plan.refuse(ErrorCode.INVALID_PARTITIONS, too_many)
        indexes = [a.partition_index for a in assignments]
        if indexes != list(range(len(indexes))):
            return plan.refuse(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "partitions must be numbered 0..n-1")
        chosen = [[int(b) for b in a.broker_ids] for a in assignments]
        refusal = ClusterState._check_assignments(chosen, None, live)
        if refusal is not None:
            return plan.refuse(ErrorCode.INVALID_REPLICA_ASSIGNMENT, refusal.message)
        plan.num_partitions, plan.replication_factor = len(chosen), len(chosen[0])
        plan.assignments = chosen
    else:
        partitions = topic.num_partitions
        if partitions == -1:
            partitions = effective_num_partitions(node)
        if partitions < 1:
            return plan.refuse(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        if (too_many := _too_many_partitions(partitions)) is not None:
            return plan.refuse(ErrorCode.INVALID_PARTITIONS, too_many)
        factor = topic.replication_factor
        if factor == -1:
            factor = effective_replication_factor(node)
        if factor < 1:
            return plan.refuse(
                ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."
            )
        if factor > len(live):
            return plan.refuse(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Replication factor: {factor} larger than available brokers: {len(live)}.",
            )
        plan.num_partitions, plan.replication_factor = partitions, factor
    names = Counter(c.name for c in topic.configs or [])
    repeated = [n for n, count in names.items() if count > 1]
    if repeated:
        return plan.refuse(ErrorCode.INVALID_CONFIG, f"configs given more than once: {repeated}")
    plan.configs = {c.name: c.value for c in topic.configs or []}
    problem = check_topic_overrides(node, plan.configs)
    if problem is not None:
        return plan.refuse(ErrorCode.INVALID_CONFIG, problem)
    return plan


def _shared_configs(node: Node, overrides: dict[str, str],
                    known: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    key = tuple(sorted(overrides.items()))
    if key not in known:
        known[key] = _created_configs(node, overrides)
    return known[key]


def _created_configs(node: Node, overrides: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": e.name,
            "value": e.value,
            "read_only": e.read_only,
            "config_source": int(e.source),
            "is_sensitive": False,
        }
        for e in describe_topic_configs(node, overrides)
    ]


@handles("CreateTopics")
async def create_topics(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    validate_only = bool(body.validate_only)
    # Kafka refuses every copy of a name given twice; by key, as attribute access on a
    # Container costs ten times as much per element.
    counts = Counter(t["name"] for t in body.topics)
    results: list[dict[str, Any]] = []
    pacer = Pacer()
    # Every created topic's answer lists all its configs (dozens); topics created with
    # the same overrides share one list, so a request of many costs one list, not many.
    configs_answers: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for topic in body.topics:
        await pacer.pause_if_due()
        if counts[topic.name] > 1:
            plan = TopicPlan(topic.name).refuse(
                ErrorCode.INVALID_REQUEST, f"Topic '{topic.name}' appears more than once in the request."
            )
        elif not cluster_allowed(node, client, request, AclOperation.CREATE) and not topic_allowed(
                node, client, request, AclOperation.CREATE, topic.name):
            plan = TopicPlan(topic.name).refuse(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
        else:
            plan = plan_topic(node, topic)
        topic_id = bytes(16)
        if plan.error == ErrorCode.NONE and not validate_only:
            outcome = await propose_within(
                node,
                CreateTopic(plan.name, uuid.uuid4().bytes, plan.num_partitions, plan.replication_factor, plan.configs)
                if plan.assignments is None
                else CreateTopic(plan.name, uuid.uuid4().bytes, -1, -1, plan.configs, plan.assignments),
                body.timeout_ms,
            )
            plan.error, plan.message = outcome.error, outcome.message
            if isinstance(outcome.result, TopicCreated):
                topic_id = outcome.result.topic_id
        ok = plan.error == ErrorCode.NONE
        results.append(
            {
                "name": plan.name,
                "topic_id": uuid.UUID(bytes=topic_id),
                "error_code": plan.error,
                "error_message": plan.message,
                "num_partitions": plan.num_partitions if ok else -1,
                "replication_factor": plan.replication_factor if ok else -1,
                "configs": _shared_configs(node, plan.configs, configs_answers) if ok else None,
            }
        )
    return {"throttle_time_ms": 0, "topics": results}


def _deletion_targets(request: Request) -> tuple[list[tuple[str | None, Any]], list[tuple[str | None, Any]]]:
    """(distinct targets, duplicated ones): Kafka answers a name or id given more than
    once with INVALID_REQUEST, once, and deletes nothing for it."""
    body = request.body
    if request.api_version >= 6:
        given = [(t["name"], t["topic_id"]) for t in body.topics]
    else:
        given = [(name, None) for name in body.topic_names]
    counts = Counter(name if name is not None else topic_id for name, topic_id in given)
    distinct: list[tuple[str | None, Any]] = []
    duplicated: dict[Any, tuple[str | None, Any]] = {}
    for name, topic_id in given:
        key = name if name is not None else topic_id
        if counts[key] == 1:
            distinct.append((name, topic_id))
        else:
            duplicated.setdefault(key, (name, topic_id))
    return distinct, list(duplicated.values())


@handles("DeleteTopics")
async def delete_topics(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    wanted, duplicated = _deletion_targets(request)
    results: list[dict[str, Any]] = [{
        "name": name,
        "topic_id": topic_id if isinstance(topic_id, uuid.UUID) else uuid.UUID(int=0),
        "error_code": ErrorCode.INVALID_REQUEST,
        "error_message": "Duplicate topic name." if name is not None else "Duplicate topic id.",
    } for name, topic_id in duplicated]
    pacer = Pacer()
    for name, topic_id in wanted:
        await pacer.pause_if_due()
        answer: dict[str, Any] = {
            "name": name,
            "topic_id": topic_id if isinstance(topic_id, uuid.UUID) else uuid.UUID(int=0),
            "error_code": ErrorCode.NONE,
            "error_message": None,
        }
        results.append(answer)
        with node.metadata() as state:
            if name is None:
                raw_id = topic_id.bytes if isinstance(topic_id, uuid.UUID) else bytes(16)
                found = state.topic_by_id(raw_id) if raw_id != bytes(16) else None
                if found is None:
                    answer["error_code"] = ErrorCode.UNKNOWN_TOPIC_ID
                    answer["error_message"] = "This server does not host this topic ID."
                    continue
            else:
                found = state.topic(name)
                if found is None:
                    answer["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    answer["error_message"] = "This server does not host this topic-partition."
                    continue
            answer["name"] = found.name
            answer["topic_id"] = uuid.UUID(bytes=found.topic_id)
        if not topic_allowed(node, client, request, AclOperation.DELETE, found.name):
            answer["error_code"] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            answer["error_message"] = "Authorization failed."
            continue
        # Node._on_metadata_applied removes the logs when the deletion is applied, before
        # this answer goes out, so a topic created again under the name starts empty.
        outcome = await propose_within(node, DeleteTopic(found.name), body.timeout_ms)
        answer["error_code"], answer["error_message"] = outcome.error, outcome.message
    return {"throttle_time_ms": 0, "responses": results}


def _plan_partitions(state: ClusterState, topic: Any) -> tuple[ErrorCode, str | None]:
    found = state.topic(topic.name)
    if found is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{topic.name}' does not exist."
    current = len(found.partitions)
    if topic.count <= current:
        verb = "reduced" if topic.count < current else "kept at"
        return ErrorCode.INVALID_PARTITIONS, (
            f"Topic currently has {current} partitions, which is higher than or equal to "
            f"the requested {topic.count}; the count cannot be {verb} {topic.count}."
        )
    if (too_many := _too_many_partitions(topic.count - current)) is not None:
        return ErrorCode.INVALID_PARTITIONS, too_many
    live = state.live_broker_ids(now_ms())
    if topic.assignments is not None:
        added = topic.count - current
        if len(topic.assignments) != added:
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT, (
                f"Increasing the number of partitions by {added} but {len(topic.assignments)} "
                "assignments provided."
            )
        chosen = [[int(b) for b in a.broker_ids] for a in topic.assignments]
        refusal = ClusterState._check_assignments(chosen, found.replication_factor, live)
        if refusal is not None:
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT, refusal.message
    elif found.replication_factor > len(live):
        return ErrorCode.INVALID_REPLICATION_FACTOR, (
            f"Replication factor {found.replication_factor} larger than available brokers: {len(live)}."
        )
    return ErrorCode.NONE, None


@handles("CreatePartitions")
async def create_partitions(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    counts = Counter(t["name"] for t in body.topics)
    results: list[dict[str, Any]] = []
    pacer = Pacer()
    for topic in body.topics:
        await pacer.pause_if_due()
        error: ErrorCode
        message: str | None
        if counts[topic.name] > 1:
            error, message = ErrorCode.INVALID_REQUEST, "Duplicate topic in request."
        elif not topic_allowed(node, client, request, AclOperation.ALTER, topic.name):
            error, message = ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."
        else:
            with node.metadata() as state:
                error, message = _plan_partitions(state, topic)
            if error == ErrorCode.NONE and not body.validate_only:
                chosen = (None if topic.assignments is None
                          else [[int(b) for b in a.broker_ids] for a in topic.assignments])
                outcome = await propose_within(
                    node, CreatePartitions(topic.name, topic.count, chosen), body.timeout_ms
                )
                error, message = outcome.error, outcome.message
        results.append({"name": topic.name, "error_code": error, "error_message": message})
    return {"throttle_time_ms": 0, "results": results}
