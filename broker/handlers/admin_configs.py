"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and brokers.

Broker resources are named by node id (that broker's own overrides); "" names the
cluster-wide defaults every broker and topic inherits. Both live in the metadata's
cluster config, changed with AlterClusterConfig.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from broker.coordination.commands import AlterClusterConfig, AlterTopicConfig, Command
from broker.handlers.admin_config_catalog import (
    BROKER_ONLY_CONFIGS,
    TOPIC_CONFIGS,
    ConfigEntry,
    ConfigSource,
    ConfigType,
    ResourceType,
    broker_name_of,
    broker_prefix,
    check_cluster_overrides,
    check_topic_overrides,
    cluster_key,
    describe_broker_configs,
    describe_topic_configs,
)
from broker.handlers.admin_proposals import DEFAULT_WAIT_MS, propose_within
from broker.handlers.pacing import Pacer
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import cluster_allowed, topic_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


class AlterOp(IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class ResourceError(Exception):
    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(slots=True)
class Target:
    """A config resource: a topic, or the cluster-wide broker defaults. `overrides`
    holds its current overrides by the names the client uses for this resource."""

    resource_type: ResourceType
    name: str
    is_topic: bool
    overrides: dict[str, str]
    # Broker resources: what their keys start with in the cluster config.
    key_prefix: str = ""


# Cluster-wide keys an AlterConfigs on "" owns; other cluster settings (session timeouts,
# metadata limits) are not broker configs a client can see, so replacing must keep them.
_MANAGED_CLUSTER_KEYS = frozenset(TOPIC_CONFIGS) | frozenset(
    name for name, d in BROKER_ONLY_CONFIGS.items() if not d.read_only
)


def resolve(node: Node, resource_type: int, name: str) -> Target:
    if resource_type == ResourceType.TOPIC:
        with node.metadata() as state:
            topic = state.topic(name)
            if topic is None:
                raise ResourceError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")
            return Target(ResourceType.TOPIC, name, True, dict(topic.config))
    if resource_type == ResourceType.BROKER:
        if name not in ("", str(node.node_id)):
            raise ResourceError(
                ErrorCode.INVALID_REQUEST,
                f"Unexpected broker id, expected {node.node_id} or empty string, but received {name}",
            )
        prefix = broker_prefix(node.node_id) if name else ""
        with node.metadata() as state:
            current = {
                broker_name_of(k[len(prefix):]): v
                for k, v in state.cluster_config.items()
                if k.startswith(prefix) and k[len(prefix):] in _MANAGED_CLUSTER_KEYS
            }
        return Target(ResourceType.BROKER, name, False, current, prefix)
    raise ResourceError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource_type}")


def authorized(node: Node, client: ClientInfo, request: Request, resource_type: int, name: str,
               operation: AclOperation) -> ResourceError | None:
    """Kafka's check for a config resource: the topic's ACLs for a topic, the cluster's
    for a broker; the error to answer when it fails."""
    if resource_type == ResourceType.TOPIC:
        if not topic_allowed(node, client, request, operation, name):
            return ResourceError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.")
    elif not cluster_allowed(node, client, request, operation):
        return ResourceError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    return None


# ------------------------------------------------------------------ describe


def _entry_dict(entry: ConfigEntry, synonyms: bool, documentation: bool) -> dict[str, Any]:
    return {
        "name": entry.name,
        "value": entry.value,
        "read_only": entry.read_only,
        "is_default": entry.source is ConfigSource.DEFAULT_CONFIG,
        "config_source": int(entry.source),
        "is_sensitive": False,
        "synonyms": [
            {"name": s.name, "value": s.value, "source": int(s.source)} for s in entry.synonyms
        ] if synonyms else [],
        "config_type": int(entry.config_type),
        "documentation": entry.doc if documentation else None,
    }


def _describe_one(node: Node, client: ClientInfo, request: Request, resource: Any) -> dict[str, Any]:
    body = request.body
    answer: dict[str, Any] = {
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "resource_type": resource.resource_type,
        "resource_name": resource.resource_name,
        "configs": [],
    }
    try:
        refused = authorized(node, client, request, resource.resource_type, resource.resource_name,
                             AclOperation.DESCRIBE_CONFIGS)
        if refused is not None:
            raise refused
        target = resolve(node, resource.resource_type, resource.resource_name)
    except ResourceError as exc:
        answer["error_code"], answer["error_message"] = exc.error, exc.message
        return answer
    if target.is_topic:
        entries = describe_topic_configs(node, target.overrides)
    else:
        entries = describe_broker_configs(node, defaults_only=target.name == "")
    keys = resource.configuration_keys
    if keys is not None:
        wanted = set(keys)
        entries = [e for e in entries if e.name in wanted]
    answer["configs"] = [
        _entry_dict(e, bool(body.include_synonyms), bool(body.include_documentation))
        for e in entries
    ]
    return answer


@handles("DescribeConfigs")
async def describe_configs(node: Node, client: ClientInfo, request: Request) -> Body:
    # A resource asked for twice (with the same keys) is described and answered once:
    # each answer carries dozens of entries, so copies would multiply the work and the
    # response. Clients match results by resource, and send each once anyway.
    distinct: dict[tuple[int, str, tuple[str, ...] | None], Any] = {}
    for resource in request.body.resources:
        keys = resource["configuration_keys"]
        distinct.setdefault(
            (resource["resource_type"], resource["resource_name"],
             None if keys is None else tuple(keys)), resource)
    pacer = Pacer()
    results = []
    for resource in distinct.values():
        results.append(_describe_one(node, client, request, resource))
        await pacer.pause_if_due()
    return {"throttle_time_ms": 0, "results": results}


# ------------------------------------------------------------------ alter


def _current_value(node: Node, target: Target, name: str) -> str | None:
    if target.is_topic:
        entries = describe_topic_configs(node, target.overrides)
    else:
        entries = describe_broker_configs(node, defaults_only=False)
    return next((e.value for e in entries if e.name == name), None)


def _list_config(target: Target, name: str) -> bool:
    if target.is_topic:
        definition = TOPIC_CONFIGS.get(name)
        return definition is not None and definition.config_type is ConfigType.LIST
    topic_name = cluster_key(name)
    definition = TOPIC_CONFIGS.get(topic_name)
    return definition is not None and definition.config_type is ConfigType.LIST


def incremental_overrides(node: Node, target: Target, configs: list[Any]) -> dict[str, str]:
    """The resource's overrides after IncrementalAlterConfigs' operations."""
    new = dict(target.overrides)
    for c in configs:
        try:
            op = AlterOp(c.config_operation)
        except ValueError:
            raise ResourceError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {c.config_operation}") from None
        if op is AlterOp.DELETE:
            new.pop(c.name, None)
            continue
        if c.value is None:
            raise ResourceError(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
        if op is AlterOp.SET:
            new[c.name] = c.value
            continue
        if not _list_config(target, c.name):
            raise ResourceError(
                ErrorCode.INVALID_CONFIG,
                f"Config value append/subtract is not allowed for config key: {c.name}",
            )
        current = new.get(c.name) or _current_value(node, target, c.name) or ""
        items = [v.strip() for v in current.split(",") if v.strip()]
        changes = [v.strip() for v in c.value.split(",") if v.strip()]
        if op is AlterOp.APPEND:
            items += [v for v in changes if v not in items]
        else:
            items = [v for v in items if v not in changes]
        new[c.name] = ",".join(items)
    return new


def _command_for(target: Target, new: dict[str, str]) -> Command:
    set_configs = {k: v for k, v in new.items() if target.overrides.get(k) != v}
    deleted = [k for k in target.overrides if k not in new]
    if target.is_topic:
        return AlterTopicConfig(target.name, set_configs, deleted)
    prefix = target.key_prefix
    return AlterClusterConfig(
        {prefix + cluster_key(k): v for k, v in set_configs.items()}, [prefix + cluster_key(k) for k in deleted]
    )


# Read by the metadata state machine itself, which every node must apply alike: only
# the cluster-wide default exists.
CLUSTER_WIDE_ONLY = frozenset({"dead.broker.replacement.ms"})


async def _alter(node: Node, target: Target, new: dict[str, str], validate_only: bool) -> tuple[ErrorCode, str | None]:
    problem = (check_topic_overrides if target.is_topic else check_cluster_overrides)(node, new)
    if problem is None and target.key_prefix:
        shared = sorted(CLUSTER_WIDE_ONLY & {k for k, v in new.items() if target.overrides.get(k) != v})
        if shared:
            problem = f"{shared[0]} is cluster-wide: set it on the default broker resource"
    if problem is not None:
        return ErrorCode.INVALID_CONFIG, problem
    if validate_only:
        return ErrorCode.NONE, None
    outcome = await propose_within(node, _command_for(target, new), DEFAULT_WAIT_MS)
    return outcome.error, outcome.message


async def _alter_all(node: Node, client: ClientInfo, request: Request, incremental: bool) -> Body:
    body = request.body
    responses = []
    for resource in body.resources:
        answer: dict[str, Any] = {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
        }
        responses.append(answer)
        try:
            repeated = [n for n, k in Counter(c.name for c in resource.configs).items() if k > 1]
            # Kafka refuses repeated names only in IncrementalAlterConfigs; AlterConfigs
            # takes the last value (clients that copy described entries send repeats).
            if repeated and incremental:
                raise ResourceError(ErrorCode.INVALID_REQUEST, f"Error due to duplicate config keys: {repeated}")
            refused = authorized(node, client, request, resource.resource_type, resource.resource_name,
                                 AclOperation.ALTER_CONFIGS)
            if refused is not None:
                raise refused
            target = resolve(node, resource.resource_type, resource.resource_name)
            if incremental:
                new = incremental_overrides(node, target, resource.configs)
            else:
                # AlterConfigs replaces: overrides the request leaves out are removed.
                # The last value of a repeated name wins.
                new = {c.name: c.value for c in resource.configs if c.value is not None}
        except ResourceError as exc:
            answer["error_code"], answer["error_message"] = exc.error, exc.message
            continue
        answer["error_code"], answer["error_message"] = await _alter(node, target, new, bool(body.validate_only))
    return {"throttle_time_ms": 0, "responses": responses}


@handles("AlterConfigs")
async def alter_configs(node: Node, client: ClientInfo, request: Request) -> Body:
    return await _alter_all(node, client, request, incremental=False)


@handles("IncrementalAlterConfigs")
async def incremental_alter_configs(node: Node, client: ClientInfo, request: Request) -> Body:
    return await _alter_all(node, client, request, incremental=True)
