"""OffsetCommit, OffsetFetch and OffsetDelete. Committed offsets live in the Raft
metadata (the coordinator's store), so they survive restarts and every node agrees."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from broker.groups import FetchedOffset, OffsetAndMetadata, TopicPartition
from broker.handlers.groups_coordinator import serving
from broker.handlers.pacing import Pacer, chunks
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics, group_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


def known_partitions(node: Node, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
    """Those of `partitions` that exist in this node's applied metadata."""
    with node.metadata() as state:
        return {tp for tp in partitions if state.partition(tp.topic, tp.partition) is not None}


def _by_topic(
    requested: Iterable[tuple[str, Iterable[int]]], errors: dict[TopicPartition, int]
) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "partitions": [
                {"partition_index": p, "error_code": errors[TopicPartition(name, p)]} for p in indexes
            ],
        }
        for name, indexes in requested
    ]


# ---------------------------------------------------------------------- OffsetCommit

# Partitions checked against the metadata under one hold of its lock.
_KNOWN_GROUP = 2000


@handles("OffsetCommit")
async def offset_commit(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    requested = [(t.name, [p["partition_index"] for p in t.partitions]) for t in body.topics]
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    pacer = Pacer()
    for t in body.topics:
        for p in t.partitions:
            await pacer.pause_if_due()
            offsets[TopicPartition(t.name, p.partition_index)] = OffsetAndMetadata(
                p.committed_offset,
                p.committed_leader_epoch if version >= 6 else -1,
                p.committed_metadata or "",
                # Only v1 lets the client stamp its commit; -1 means "now".
                p.commit_timestamp if version == 1 else -1,
            )
    errors: dict[TopicPartition, int] = {}
    groups, error = serving(node, body.group_id) if group_allowed(
        node, client, request, AclOperation.READ, body.group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        errors = dict.fromkeys(offsets, error)
    else:
        denied = denied_topics(node, client, request, AclOperation.READ, (t.name for t in body.topics))
        known: set[TopicPartition] = set()
        for group in chunks(list(offsets), _KNOWN_GROUP):
            known |= known_partitions(node, group)
            await pacer.pause_if_due()
        errors = {tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp.topic in denied else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                  for tp in offsets if tp not in known or tp.topic in denied}
        to_commit = {tp: om for tp, om in offsets.items() if tp not in errors}
        if to_commit:
            result = await groups.commit_offsets(
                body.group_id,
                to_commit,
                # v0 commits outside any generation, as a client managing its own partitions.
                member_id=body.member_id if version >= 1 else "",
                generation_id=body.generation_id_or_member_epoch if version >= 1 else -1,
                group_instance_id=body.group_instance_id if version >= 7 else None,
                unknown_group_is_not_found=version >= 9,
            )
            errors.update(result.errors)
    return {"throttle_time_ms": 0, "topics": _by_topic(requested, errors)}


# ----------------------------------------------------------------------- OffsetFetch


def _partition_answer(index: int, fetched: FetchedOffset) -> dict[str, Any]:
    return {
        "partition_index": index,
        "committed_offset": fetched.offset,
        "committed_leader_epoch": fetched.leader_epoch,
        "metadata": fetched.metadata,
        "error_code": fetched.error_code,
    }


async def _fetch_group(
    node: Node, group_id: str, topics: list[tuple[str, list[int]]] | None, require_stable: bool,
    client: ClientInfo, request: Request,
) -> tuple[int, list[dict[str, Any]]]:
    """One group's committed offsets: (group error, topics). `topics` None asks for
    every partition the group has committed."""
    groups, error = serving(node, group_id) if group_allowed(
        node, client, request, AclOperation.DESCRIBE, group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        return error, []
    # Each partition once, however often it is named: the answer lists each once too.
    wanted = None if topics is None else list(
        dict.fromkeys(TopicPartition(n, p) for n, ps in topics for p in ps))
    result = await groups.fetch_offsets(group_id, wanted, require_stable=require_stable)
    if result.error_code != ErrorCode.NONE:
        return result.error_code, []
    answer: dict[str, list[dict[str, Any]]] = {}
    if topics is not None:
        for name, _ in topics:
            answer.setdefault(name, [])
    for tp, fetched in result.partitions.items():
        answer.setdefault(tp.topic, []).append(_partition_answer(tp.partition, fetched))
    # Topics the client may not describe: refused when named, left out otherwise.
    denied = denied_topics(node, client, request, AclOperation.DESCRIBE, answer)
    for name in denied:
        if topics is None:
            del answer[name]
        else:
            refused = FetchedOffset(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            answer[name] = [_partition_answer(p["partition_index"], refused) for p in answer[name]]
    return ErrorCode.NONE, [{"name": n, "partitions": ps} for n, ps in answer.items()]


def _requested_topics(topics: Any) -> list[tuple[str, list[int]]] | None:
    if topics is None:
        return None
    return [(t.name, list(t.partition_indexes)) for t in topics]


@handles("OffsetFetch")
async def offset_fetch(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    require_stable = bool(body.require_stable) if version >= 7 else False
    if version >= 8:
        # v8+ (KIP-709) asks about several groups, each answered on its own.
        answered = []
        pacer = Pacer()
        for g in body.groups:
            await pacer.pause_if_due()
            error, topics = await _fetch_group(
                node, g.group_id, _requested_topics(g.topics), require_stable, client, request
            )
            answered.append({"group_id": g.group_id, "topics": topics, "error_code": error})
        return {"throttle_time_ms": 0, "groups": answered}

    requested = _requested_topics(body.topics)
    error, topics = await _fetch_group(node, body.group_id, requested, require_stable, client, request)
    if error != ErrorCode.NONE and version < 2 and requested is not None:
        # v0-v1 have no group-level error: each partition carries it.
        failed = FetchedOffset(error_code=error)
        topics = [
            {"name": n, "partitions": [_partition_answer(p, failed) for p in ps]}
            for n, ps in requested
        ]
    return {"throttle_time_ms": 0, "topics": topics, "error_code": error}


# ---------------------------------------------------------------------- OffsetDelete


@handles("OffsetDelete")
async def offset_delete(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    requested = [(t.name, [p.partition_index for p in t.partitions]) for t in body.topics]
    partitions = [TopicPartition(n, p) for n, ps in requested for p in ps]
    groups, error = serving(node, body.group_id) if group_allowed(
        node, client, request, AclOperation.DELETE, body.group_id) else (None, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if groups is None:
        return {"error_code": error, "throttle_time_ms": 0, "topics": []}
    denied = denied_topics(node, client, request, AclOperation.READ, (t.name for t in body.topics))
    known = known_partitions(node, partitions)
    errors: dict[TopicPartition, int] = {
        tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp.topic in denied else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        for tp in partitions if tp not in known or tp.topic in denied
    }
    to_delete = [tp for tp in dict.fromkeys(partitions) if tp not in errors]
    result = await groups.delete_offsets(body.group_id, to_delete)
    if result.error_code != ErrorCode.NONE:
        return {"error_code": result.error_code, "throttle_time_ms": 0, "topics": []}
    errors.update(result.partitions)
    return {"error_code": ErrorCode.NONE, "throttle_time_ms": 0, "topics": _by_topic(requested, errors)}
