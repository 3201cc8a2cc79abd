"""Metadata: brokers, topics and partition leaders from this node's applied metadata,
creating topics on first use where the broker and the request allow it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broker.coordination.commands import CreateTopic
from broker.coordination.errors import Refusal
from broker.coordination.model import Topic
from broker.coordination.state import ClusterState
from broker.handlers.access import refusal_code
from broker.handlers.admin_config_catalog import (
    effective_num_partitions,
    effective_replication_factor,
)
from broker.handlers.pacing import Pacer, chunks
from broker.handlers.registry import Body, handles
from broker.handlers.told_brokers import ToldBrokers, told_brokers
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import CLUSTER_RESOURCE_NAME, AclOperation, ResourceType
from broker.security.checks import (
    authorized_operations,
    cluster_allowed,
    denied_topics,
    topic_allowed,
    unrestricted,
)
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

# Kafka's "authorized operations were not asked for".
NOT_REQUESTED = -(2**31)
ZERO_UUID = bytes(16)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def controller_id(node: Node, state: ClusterState) -> int:
    """The node whose Raft member leads the metadata: Kafka's controller."""
    leader = node.raft.leader if node.raft is not None else None
    for broker in state.brokers.values():
        if leader is not None and broker.raft_address == leader:
            return broker.node_id
    return -1


def describe_brokers(told: ToldBrokers) -> list[dict[str, Any]]:
    return [{"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack} for b in told.brokers]


def describe_topic(topic: Topic, told: ToldBrokers) -> dict[str, Any]:
    """A topic's partitions as `told` has the brokers (see told_brokers: the live ones,
    or every registered one while this node's metadata is known to lag)."""
    shown = told.ids
    partitions = []
    for p in topic.partitions:
        active = p.active
        replicas = list(active.replicas) or [active.leader]
        leader_alive = told.may_lead(active.leader)
        partitions.append(
            {
                "error_code": ErrorCode.NONE if leader_alive else ErrorCode.LEADER_NOT_AVAILABLE,
                "partition_index": p.index,
                "leader_id": active.leader if leader_alive else -1,
                "leader_epoch": active.epoch,
                "replica_nodes": replicas,
                "isr_nodes": [r for r in active.in_sync if r in shown],
                "offline_replicas": [r for r in replicas if r not in shown],
            }
        )
    return {
        "error_code": ErrorCode.NONE,
        "name": topic.name,
        "topic_id": uuid.UUID(bytes=topic.topic_id),
        "is_internal": False,
        "partitions": partitions,
        "topic_authorized_operations": NOT_REQUESTED,
    }


def topic_error(name: str | None, code: ErrorCode, topic_id: bytes = ZERO_UUID) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": uuid.UUID(bytes=topic_id),
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": NOT_REQUESTED,
    }


async def create_topic_on_use(node: Node, name: str) -> ErrorCode:
    """Automatic topic creation (auto.create.topics.enable), with the broker's
    num.partitions and default.replication.factor as they stand now."""
    result = await node.propose(
        CreateTopic(
            name, uuid.uuid4().bytes, effective_num_partitions(node),
            effective_replication_factor(node), {},
        )
    )
    if isinstance(result, Refusal):
        if result.error.value == "TOPIC_ALREADY_EXISTS":
            return ErrorCode.NONE
        log.info("automatic creation of %r refused: %s %s", name, result.error.value, result.message)
        return refusal_code(result)
    log.info("created topic %s on first use", name)
    return ErrorCode.NONE


def _topic_id_bytes(topic_id: Any) -> bytes:
    return bytes(topic_id.bytes) if isinstance(topic_id, uuid.UUID) else bytes(topic_id)


Distinct = dict[str | bytes, tuple[str | None, bytes]]


def add_distinct(seen: Distinct, requested: Sequence[Any]) -> None:
    """Add the topics of `requested` to `seen`, each once, in the order of first mention:
    Kafka takes them as a set, so a name sent a million times is looked up, created and
    answered once. An entry with no name stands for its topic id (v10+). Fields are read
    by key: a Container's attribute access costs ten times as much, per element."""
    for wanted in requested:
        name = wanted["name"]
        if name is not None:
            if name not in seen:
                seen[name] = (name, ZERO_UUID)
        else:
            topic_id = _topic_id_bytes(wanted["topic_id"])
            if topic_id not in seen:
                seen[topic_id] = (None, topic_id)


def distinct_requested(requested: Sequence[Any]) -> list[tuple[str | None, bytes]]:
    seen: Distinct = {}
    add_distinct(seen, requested)
    return list(seen.values())


# Topics described under one hold of the metadata; between such groups the handler
# lets go of the lock and other connections get the event loop.
_GROUP = 1000
_DEDUPE_GROUP = 20_000


@handles("Metadata")
async def metadata(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    pacer = Pacer()
    requested: list[tuple[str | None, bytes]] | None = None
    if body.topics is not None:
        seen: Distinct = {}
        for group in chunks(body.topics, _DEDUPE_GROUP):
            add_distinct(seen, group)
            await pacer.pause_if_due()
        requested = list(seen.values())
    if version == 0 and requested == []:
        requested = None  # v0: an empty list means every topic
    allow_auto = node.config.auto_create_topics and (version < 4 or body.allow_auto_topic_creation)

    creation_errors: dict[str, ErrorCode] = {}
    # Kafka answers topics the client may not describe as unauthorized, and leaves them
    # out of an all-topics answer.
    hidden: set[str] = set()
    if not unrestricted(node):
        with node.metadata() as state:
            names = list(state.topics) if requested is None else [n for n, _ in requested if n]
        for group in chunks(names, _GROUP):
            hidden.update(denied_topics(node, client, request, AclOperation.DESCRIBE, group))
            await pacer.pause_if_due()
    if requested is not None and allow_auto:
        missing: list[str] = []
        for group in chunks(requested, _GROUP):
            with node.metadata() as state:
                missing.extend(name for name, _ in group
                               if name is not None and name not in hidden and state.topic(name) is None)
            await pacer.pause_if_due()
        for name in missing:
            if not cluster_allowed(node, client, request, AclOperation.CREATE) and not topic_allowed(
                    node, client, request, AclOperation.CREATE, name):
                creation_errors[name] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
                continue
            creation_errors[name] = await create_topic_on_use(node, name)

    with node.metadata() as state:
        told = told_brokers(node, state, now_ms()).on_listener(client.listener)
        brokers = describe_brokers(told)
        controller = controller_id(node, state)
        if requested is None:
            topics = [describe_topic(t, told) for name, t in sorted(state.topics.items()) if name not in hidden]
    if requested is not None:
        topics = []
        for group in chunks(requested, _GROUP):
            with node.metadata() as state:
                topics.extend(_describe_requested(node, client, request, state, group, told,
                                                  hidden, creation_errors))
            await pacer.pause_if_due()
    answer = {
        "throttle_time_ms": 0,
        "brokers": brokers,
        "cluster_id": node.cluster_id,
        "controller_id": controller,
        "topics": topics,
        "cluster_authorized_operations": NOT_REQUESTED,
    }
    if version >= 8 and body.include_topic_authorized_operations:
        for t in topics:
            if t["error_code"] == ErrorCode.NONE:
                t["topic_authorized_operations"] = authorized_operations(
                    node, client, request, ResourceType.TOPIC, t["name"])
                await pacer.pause_if_due()
    if 8 <= version <= 10 and body.include_cluster_authorized_operations:
        answer["cluster_authorized_operations"] = authorized_operations(
            node, client, request, ResourceType.CLUSTER, CLUSTER_RESOURCE_NAME)
    return answer


def _describe_requested(node: Node, client: ClientInfo, request: Request, state: ClusterState,
                        requested: Sequence[tuple[str | None, bytes]], told: ToldBrokers,
                        hidden: set[str], creation_errors: dict[str, ErrorCode]) -> list[dict[str, Any]]:
    topics = []
    for name, topic_id in requested:
        if name is None:
            found = state.topic_by_id(topic_id)
            if found is not None and not topic_allowed(node, client, request, AclOperation.DESCRIBE,
                                                       found.name):
                topics.append(topic_error(None, ErrorCode.TOPIC_AUTHORIZATION_FAILED, topic_id))
                continue
            topics.append(
                describe_topic(found, told) if found is not None
                else topic_error(None, ErrorCode.UNKNOWN_TOPIC_ID, topic_id)
            )
            continue
        found = state.topic(name)
        if name in hidden:
            topics.append(topic_error(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
        elif found is not None:
            topics.append(describe_topic(found, told))
        else:
            # A name automatic creation refused (say, an illegal one) reports why.
            code = creation_errors.get(name) or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            topics.append(topic_error(name, code))
    return topics
