"""ListGroups, DescribeGroups and DeleteGroups: what administrators see of the groups
this node coordinates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.groups import DescribedGroup
from broker.handlers.groups_coordinator import coordinates, serving
from broker.handlers.pacing import Pacer, chunks
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation, ResourceType
from broker.security.checks import authorized_operations, cluster_allowed, group_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

# Kafka's "authorized operations were not asked for".
NOT_REQUESTED = -(2**31)


@handles("ListGroups")
async def list_groups(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    if node.groups is None:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.COORDINATOR_NOT_AVAILABLE, "groups": []}
    states = list(body.states_filter) if version >= 4 else []
    types = list(body.types_filter) if version >= 5 else []
    result = node.groups.list_groups(states, types)
    # Kafka lists every group to DESCRIBE on the cluster, otherwise those the client may describe.
    everything = cluster_allowed(node, client, request, AclOperation.DESCRIBE)
    listed = [
        {
            "group_id": g.group_id,
            "protocol_type": g.protocol_type,
            "group_state": g.group_state,
            "group_type": g.group_type,
        }
        for g in result.groups
        # Every node knows the groups with offsets; each lists only those it coordinates.
        if coordinates(node, g.group_id)
        and (everything or group_allowed(node, client, request, AclOperation.DESCRIBE, g.group_id))
    ]
    return {"throttle_time_ms": 0, "error_code": result.error_code, "groups": listed}


def _described(group: DescribedGroup, operations: int) -> dict[str, Any]:
    return {
        "error_code": group.error_code,
        "group_id": group.group_id,
        "group_state": group.group_state,
        "protocol_type": group.protocol_type,
        "protocol_data": group.protocol_data,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.member_metadata,
                "member_assignment": m.member_assignment,
            }
            for m in group.members
        ],
        "authorized_operations": operations,
    }


@handles("DescribeGroups")
async def describe_groups(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    wants_operations = request.api_version >= 3 and body.include_authorized_operations
    described = []
    pacer = Pacer()
    for group_id in body.groups:
        await pacer.pause_if_due()
        operations = authorized_operations(node, client, request, ResourceType.GROUP, group_id) \
            if wants_operations else NOT_REQUESTED
        groups, error = serving(node, group_id) if group_allowed(
            node, client, request, AclOperation.DESCRIBE, group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
        if groups is None:
            described.append(_described(DescribedGroup(group_id, error, ""), operations))
        else:
            described.extend(_described(g, operations) for g in groups.describe([group_id]))
    return {"throttle_time_ms": 0, "groups": described}


# Groups deleted in one call to the coordinator; the loop is handed back between calls.
_DELETE_GROUP = 500


@handles("DeleteGroups")
async def delete_groups(node: Node, client: ClientInfo, request: Request) -> Body:
    results: dict[str, int] = {}
    ours: list[str] = []
    pacer = Pacer()
    for group_id in dict.fromkeys(request.body.groups_names):
        await pacer.pause_if_due()
        groups, error = serving(node, group_id) if group_allowed(
            node, client, request, AclOperation.DELETE, group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
        if groups is None:
            results[group_id] = error
        else:
            ours.append(group_id)
    assert node.groups is not None or not ours
    for group in chunks(ours, _DELETE_GROUP):
        assert node.groups is not None
        results.update(await node.groups.delete_groups(group))
        await pacer.pause_if_due()
    return {
        "throttle_time_ms": 0,
        "results": [{"group_id": g, "error_code": results[g]} for g in dict.fromkeys(request.body.groups_names)],
    }
