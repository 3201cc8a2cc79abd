"""CreateAcls, DescribeAcls and DeleteAcls: the cluster's ACL bindings, stored in the
Raft metadata, checked here first with Kafka's validation so that only well-formed
bindings and filters are proposed.

Changing ACLs needs ALTER on the cluster and reading them DESCRIBE, as in Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from broker.coordination.acls import AclCreation, AclDeletion, AclsCreated, AclsDeleted
from broker.coordination.commands import Command, CreateAcls, DeleteAcls
from broker.handlers.admin_proposals import propose_within
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
    binding_problem,
    filter_problem,
    wire_code,
)
from broker.security.checks import cluster_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

# ACL requests carry no timeout; an admin client waits about this long for an answer.
ACL_PROPOSAL_WAIT_MS = 30_000
NOT_AUTHORIZED = "Cluster authorization failed."


def binding_from_wire(entry: Any, version: int) -> AclBinding:
    # v0 has no pattern type: every v0 binding is LITERAL.
    pattern = entry.resource_pattern_type if version >= 1 else PatternType.LITERAL
    return AclBinding(
        wire_code(ResourceType, entry.resource_type), entry.resource_name or "",
        wire_code(PatternType, pattern), entry.principal or "", entry.host or "",
        wire_code(AclOperation, entry.operation), wire_code(AclPermission, entry.permission_type),
    )


def filter_from_wire(entry: Any, version: int) -> AclBindingFilter:
    pattern = entry.pattern_type_filter if version >= 1 else PatternType.LITERAL
    return AclBindingFilter(
        wire_code(ResourceType, entry.resource_type_filter), entry.resource_name_filter,
        wire_code(PatternType, pattern), entry.principal_filter, entry.host_filter,
        wire_code(AclOperation, entry.operation), wire_code(AclPermission, entry.permission_type),
    )


def describe_resources(bindings: Sequence[AclBinding]) -> list[dict[str, Any]]:
    """Bindings grouped by resource pattern, as DescribeAcls answers them."""
    grouped: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    for b in bindings:
        key = (int(b.resource_type), b.resource_name, int(b.pattern_type))
        grouped.setdefault(key, []).append({
            "principal": b.principal, "host": b.host,
            "operation": int(b.operation), "permission_type": int(b.permission),
        })
    return [
        {"resource_type": rtype, "resource_name": name, "pattern_type": pattern, "acls": acls}
        for (rtype, name, pattern), acls in grouped.items()
    ]


def _matching_acl(b: AclBinding) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.NONE, "error_message": None,
        "resource_type": int(b.resource_type), "resource_name": b.resource_name,
        "pattern_type": int(b.pattern_type), "principal": b.principal, "host": b.host,
        "operation": int(b.operation), "permission_type": int(b.permission),
    }


_Entry = TypeVar("_Entry", AclBinding, AclBindingFilter)


async def _propose_valid(
    node: Node,
    results: list[dict[str, Any]],
    entries: Sequence[_Entry],
    problem_of: Callable[[_Entry], str | None],
    command: Callable[[list[list[Any]]], Command],
) -> list[tuple[int, Any]]:
    """Refuses in `results` (one per entry, same order) each entry Kafka's validation
    rejects, proposes the rest as one command and maps its outcomes back to the request:
    a proposal that fails fails every entry in it, and a row the state machine rejects is
    INVALID_REQUEST. Returns (request index, state-machine outcome) for each row applied."""
    valid: list[int] = []
    for i, entry in enumerate(entries):
        problem = problem_of(entry)
        if problem is not None:
            results[i].update(error_code=ErrorCode.INVALID_REQUEST, error_message=problem)
        else:
            valid.append(i)
    if not valid:
        return []
    rows = [entries[i].to_row() for i in valid]
    outcome = await propose_within(node, command(rows), ACL_PROPOSAL_WAIT_MS)
    if not isinstance(outcome.result, AclsCreated | AclsDeleted):
        error = outcome.error if outcome.error != ErrorCode.NONE else ErrorCode.UNKNOWN_SERVER_ERROR
        for i in valid:
            results[i].update(error_code=error, error_message=outcome.message)
        return []
    outcomes: Sequence[AclCreation | AclDeletion] = outcome.result.outcomes
    applied: list[tuple[int, Any]] = []
    for i, done in zip(valid, outcomes, strict=True):
        if done.problem is not None:
            results[i].update(error_code=ErrorCode.INVALID_REQUEST, error_message=done.problem)
        else:
            applied.append((i, done))
    return applied


@handles("CreateAcls")
async def create_acls(node: Node, client: ClientInfo, request: Request) -> Body:
    creations = request.body.creations or []
    results: list[dict[str, Any]] = [{"error_code": ErrorCode.NONE, "error_message": None} for _ in creations]
    if not cluster_allowed(node, client, request, AclOperation.ALTER):
        for r in results:
            r.update(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
        return {"throttle_time_ms": 0, "results": results}
    bindings = [binding_from_wire(entry, request.api_version) for entry in creations]
    await _propose_valid(node, results, bindings, binding_problem, CreateAcls)
    return {"throttle_time_ms": 0, "results": results}


@handles("DescribeAcls")
async def describe_acls(node: Node, client: ClientInfo, request: Request) -> Body:
    answer: dict[str, Any] = {"throttle_time_ms": 0, "error_code": ErrorCode.NONE,
                              "error_message": None, "resources": []}
    if not cluster_allowed(node, client, request, AclOperation.DESCRIBE):
        answer.update(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
        return answer
    flt = filter_from_wire(request.body, request.api_version)
    problem = filter_problem(flt)
    if problem is not None:
        answer.update(error_code=ErrorCode.INVALID_REQUEST, error_message=problem)
        return answer
    with node.metadata() as state:
        found = state.acls.matching(flt)
    answer["resources"] = describe_resources(found)
    return answer


@handles("DeleteAcls")
async def delete_acls(node: Node, client: ClientInfo, request: Request) -> Body:
    filters = request.body.filters or []
    results: list[dict[str, Any]] = [
        {"error_code": ErrorCode.NONE, "error_message": None, "matching_acls": []} for _ in filters
    ]
    if not cluster_allowed(node, client, request, AclOperation.ALTER):
        for r in results:
            r.update(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
        return {"throttle_time_ms": 0, "filter_results": results}
    flts = [filter_from_wire(entry, request.api_version) for entry in filters]
    for i, done in await _propose_valid(node, results, flts, filter_problem, DeleteAcls):
        results[i]["matching_acls"] = [_matching_acl(b) for b in done.removed]
    return {"throttle_time_ms": 0, "filter_results": results}
