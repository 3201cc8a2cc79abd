"""JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the classic group protocol, mapped
onto the group coordinator's coroutines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.groups import JoinResult, MemberIdentity
from broker.handlers.groups_coordinator import serving
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import group_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


def client_host(client: ClientInfo) -> str:
    # Kafka shows a member's address as InetAddress.toString() prints it.
    return f"/{client.host}"


def _nullable_before(version: int, since: int, value: str | None) -> str | None:
    """A nullable string that versions before `since` cannot carry as null."""
    if value is None and version < since:
        return ""
    return value


def _join_response(version: int, result: JoinResult) -> dict[str, Any]:
    return {
        "throttle_time_ms": 0,
        "error_code": result.error_code,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": _nullable_before(version, 7, result.protocol_name),
        "leader": result.leader,
        "skip_assignment": result.skip_assignment,
        "member_id": result.member_id,
        "members": [
            {"member_id": m.member_id, "group_instance_id": m.group_instance_id, "metadata": m.metadata}
            for m in result.members
        ],
    }


@handles("JoinGroup")
async def join_group(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    groups, error = serving(node, body.group_id) if group_allowed(
        node, client, request, AclOperation.READ, body.group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        return _join_response(version, JoinResult(error, member_id=body.member_id))
    result = await groups.join(
        body.group_id,
        body.member_id,
        protocol_type=body.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in body.protocols],
        session_timeout_ms=body.session_timeout_ms,
        # v0 has no rebalance timeout: the field holds its default, -1.
        rebalance_timeout_ms=body.rebalance_timeout_ms if version >= 1 else -1,
        group_instance_id=body.group_instance_id if version >= 5 else None,
        client_id=request.client_id or "",
        client_host=client_host(client),
        require_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
        reason=body.reason if version >= 8 else None,
    )
    return _join_response(version, result)


@handles("SyncGroup")
async def sync_group(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    groups, error = serving(node, body.group_id) if group_allowed(
        node, client, request, AclOperation.READ, body.group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        return {"throttle_time_ms": 0, "error_code": error, "assignment": b""}
    result = await groups.sync(
        body.group_id,
        body.generation_id,
        body.member_id,
        assignments={a.member_id: bytes(a.assignment) for a in body.assignments},
        group_instance_id=body.group_instance_id if version >= 3 else None,
        protocol_type=body.protocol_type if version >= 5 else None,
        protocol_name=body.protocol_name if version >= 5 else None,
    )
    return {
        "throttle_time_ms": 0,
        "error_code": result.error_code,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }


@handles("Heartbeat")
async def heartbeat(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    groups, error = serving(node, body.group_id) if group_allowed(
        node, client, request, AclOperation.READ, body.group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        return {"throttle_time_ms": 0, "error_code": error}
    result = await groups.heartbeat(
        body.group_id,
        body.generation_id,
        body.member_id,
        group_instance_id=body.group_instance_id if request.api_version >= 3 else None,
    )
    return {"throttle_time_ms": 0, "error_code": result.error_code}


@handles("LeaveGroup")
async def leave_group(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    groups, error = serving(node, body.group_id) if group_allowed(
        node, client, request, AclOperation.READ, body.group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        return {"throttle_time_ms": 0, "error_code": error, "members": []}
    if version < 3:
        result = await groups.leave(body.group_id, [MemberIdentity(body.member_id)])
        return {"throttle_time_ms": 0, "error_code": result.combined_error_code}
    # v3+ (KIP-345) names several members, by member id or by group.instance.id alone.
    identities = [
        MemberIdentity(m.member_id, m.group_instance_id, m.reason if version >= 5 else None)
        for m in body.members
    ]
    result = await groups.leave(body.group_id, identities)
    return {
        "throttle_time_ms": 0,
        "error_code": result.error_code,
        "members": [
            {"member_id": m.member_id, "group_instance_id": m.group_instance_id, "error_code": m.error_code}
            for m in result.members
        ],
    }

