"""DescribeCluster and DescribeLogDirs: the brokers and controller, and the one log
directory this node keeps its partitions in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from broker.handlers.metadata import NOT_REQUESTED, controller_id, describe_brokers, now_ms
from broker.handlers.registry import Body, handles
from broker.handlers.told_brokers import told_brokers
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import CLUSTER_RESOURCE_NAME, AclOperation, ResourceType
from broker.security.checks import authorized_operations, cluster_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

ENDPOINT_BROKERS = 1


@handles("DescribeCluster")
async def describe_cluster(node: Node, client: ClientInfo, request: Request) -> Body:
    endpoint_type = request.body.endpoint_type if request.api_version >= 1 else ENDPOINT_BROKERS
    answer: dict[str, Any] = {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "endpoint_type": endpoint_type,
        "cluster_id": node.cluster_id,
        "controller_id": -1,
        "brokers": [],
        "cluster_authorized_operations": NOT_REQUESTED,
    }
    if request.body.include_cluster_authorized_operations:
        answer["cluster_authorized_operations"] = authorized_operations(
            node, client, request, ResourceType.CLUSTER, CLUSTER_RESOURCE_NAME)
    if endpoint_type != ENDPOINT_BROKERS:
        # Walrus has no separate controller listeners: the Raft leader is a broker.
        answer["error_code"] = ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        answer["error_message"] = "Only brokers (endpoint type 1) can be described here."
        return answer
    with node.metadata() as state:
        answer["controller_id"] = controller_id(node, state)
        # The same brokers Metadata lists, stale-view rule included (told_brokers).
        answer["brokers"] = [
            {"broker_id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b["rack"]}
            for b in describe_brokers(
                told_brokers(node, state, now_ms()).on_listener(client.listener))
        ]
    return answer


def hosted_partitions(node: Node, wanted: dict[str, set[int] | None] | None) -> dict[str, list[int]]:
    """Partitions this node holds a replica of, limited to `wanted` (None: all; a topic
    mapped to None: all of its partitions)."""
    held: dict[str, list[int]] = {}
    with node.metadata() as state:
        for name, topic in sorted(state.topics.items()):
            if wanted is not None and name not in wanted:
                continue
            picked = wanted.get(name) if wanted is not None else None
            for p in topic.partitions:
                if picked is not None and p.index not in picked:
                    continue
                if any(node.node_id in s.replicas or s.leader == node.node_id for s in p.segments):
                    held.setdefault(name, []).append(p.index)
    return held


@handles("DescribeLogDirs")
async def describe_log_dirs(node: Node, client: ClientInfo, request: Request) -> Body:
    if not cluster_allowed(node, client, request, AclOperation.DESCRIBE):
        # Kafka: no log dirs, and (v3+) the error at the top.
        return {"throttle_time_ms": 0, "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "results": []}
    requested = request.body.topics
    wanted: dict[str, set[int] | None] | None = (
        None if requested is None else {t.topic: set(t.partitions) for t in requested}
    )
    assert node.replicas is not None
    logs = node.replicas.logs
    topics = []
    for name, partitions in hosted_partitions(node, wanted).items():
        described = []
        for index in partitions:
            opened = logs.get(name, index)
            described.append(
                {
                    "partition_index": index,
                    # A partition not written to yet has no files here.
                    "partition_size": opened.log.size_bytes if opened is not None else 0,
                    "offset_lag": 0,
                    "is_future_key": False,
                }
            )
        topics.append({"name": name, "partitions": described})
    log_dir = os.path.abspath(logs.data_dir)
    total = usable = -1
    try:
        stats = os.statvfs(log_dir)
        total, usable = stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize
    except OSError:
        pass
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "results": [
            {
                "error_code": ErrorCode.NONE,
                "log_dir": log_dir,
                "topics": topics,
                "total_bytes": total,
                "usable_bytes": usable,
            }
        ],
    }
