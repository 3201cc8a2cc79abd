"""DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): the users' SCRAM
credentials, stored in the Raft metadata one per (user, mechanism).

Kafka's rules, as its KRaft controller applies them: a user named twice in one request
fails with DUPLICATE_RESOURCE (in Alter, whether the two entries are deletions,
upsertions or one of each), and each user gets one result. The client sends
SaltedPassword, never the password; StoredKey and ServerKey are derived from it here,
so neither the password nor SaltedPassword reaches the metadata. Reading credentials
needs DESCRIBE on the cluster and changing them ALTER, as in Kafka.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.coordination.commands import Command, DeleteScramCredential, UpsertScramCredential
from broker.coordination.scram_credentials import credential_problem
from broker.handlers.admin_proposals import propose_within
from broker.handlers.registry import Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import cluster_allowed
from broker.security.scram import (
    MAX_ITERATIONS,
    MECHANISM_CODES,
    MECHANISMS_BY_CODE,
    MIN_ITERATIONS,
    credential_from_salted_password,
    digest_size,
)
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

# These requests carry no timeout; an admin client waits about this long for an answer.
PROPOSAL_WAIT_MS = 30_000
# Proposals in flight at once for one request: a request naming thousands of users
# must not queue thousands of Raft entries in one go.
MAX_CONCURRENT_PROPOSALS = 64
NOT_AUTHORIZED = "Cluster authorization failed."
DUPLICATE_ALTER = "A user credential cannot be altered twice in the same request"


@dataclass(slots=True)
class _Result:
    user: str
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None

    def to_body(self) -> dict[str, Any]:
        return {"user": self.user, "error_code": self.error, "error_message": self.message}


@handles("DescribeUserScramCredentials")
async def describe_user_scram_credentials(node: Node, client: ClientInfo, request: Request) -> Body:
    answer: dict[str, Any] = {"throttle_time_ms": 0, "error_code": ErrorCode.NONE,
                              "error_message": None, "results": []}
    if not cluster_allowed(node, client, request, AclOperation.DESCRIBE):
        answer.update(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
        return answer
    with node.metadata() as state:
        stored = state.scram_credentials()
    infos: dict[str, list[dict[str, int]]] = {}
    for (user, mechanism), credential in sorted(stored.items()):
        infos.setdefault(user, []).append(
            {"mechanism": MECHANISM_CODES[mechanism], "iterations": credential.iterations})
    results = answer["results"]
    users = request.body.users
    if not users:  # null or empty: every user that has a credential
        for user, found in infos.items():
            results.append({**_Result(user).to_body(), "credential_infos": found})
        return answer
    names = [u.name for u in users]
    counts = Counter(names)
    for name in dict.fromkeys(names):  # each user once, in request order
        result = _Result(name)
        if counts[name] > 1:
            result.error = ErrorCode.DUPLICATE_RESOURCE
            result.message = f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
        elif name not in infos:
            result.error = ErrorCode.RESOURCE_NOT_FOUND
            result.message = f"Attempt to describe a user credential that does not exist: {name}"
        results.append({**result.to_body(), "credential_infos": [] if result.error else infos[name]})
    return answer


def _deletion_command(entry: Any) -> Command | tuple[ErrorCode, str]:
    mechanism = MECHANISMS_BY_CODE.get(entry.mechanism)
    problem = credential_problem(entry.name, mechanism)
    if problem is not None:
        return ErrorCode[problem[0]], problem[1]
    assert mechanism is not None
    return DeleteScramCredential(entry.name, mechanism)


def _upsertion_command(entry: Any) -> Command | tuple[ErrorCode, str]:
    mechanism = MECHANISMS_BY_CODE.get(entry.mechanism)
    problem = credential_problem(entry.name, mechanism)
    if problem is not None:
        return ErrorCode[problem[0]], problem[1]
    assert mechanism is not None
    if entry.iterations < MIN_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if entry.iterations > MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    salt, salted = bytes(entry.salt or b""), bytes(entry.salted_password or b"")
    if not salt:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "The salt must not be empty"
    if len(salted) != digest_size(mechanism):
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, (
            f"A {mechanism} salted password is {digest_size(mechanism)} bytes, not {len(salted)}")
    c = credential_from_salted_password(mechanism, salted, salt, entry.iterations)
    return UpsertScramCredential(entry.name, mechanism, c.salt, c.stored_key, c.server_key, c.iterations)


@handles("AlterUserScramCredentials")
async def alter_user_scram_credentials(node: Node, client: ClientInfo, request: Request) -> Body:
    deletions = list(request.body.deletions or [])
    upsertions = list(request.body.upsertions or [])
    # One result per user, in the order users first appear (deletions, then upsertions).
    results: dict[str, _Result] = {}
    for entry in (*deletions, *upsertions):
        results.setdefault(entry.name, _Result(entry.name))
    if not cluster_allowed(node, client, request, AclOperation.ALTER):
        for result in results.values():
            result.error, result.message = ErrorCode.CLUSTER_AUTHORIZATION_FAILED, NOT_AUTHORIZED
        return {"throttle_time_ms": 0, "results": [r.to_body() for r in results.values()]}

    planned: dict[str, Command] = {}
    refused: set[str] = set()
    for entry, plan in [*((e, _deletion_command) for e in deletions),
                        *((e, _upsertion_command) for e in upsertions)]:
        name = entry.name
        if name in refused:
            continue
        result = results[name]
        if planned.pop(name, None) is not None:
            result.error, result.message = ErrorCode.DUPLICATE_RESOURCE, DUPLICATE_ALTER
            refused.add(name)
            continue
        command = plan(entry)
        if isinstance(command, tuple):
            result.error, result.message = command
            refused.add(name)
        else:
            planned[name] = command

    items = list(planned.items())
    for start in range(0, len(items), MAX_CONCURRENT_PROPOSALS):
        batch = items[start:start + MAX_CONCURRENT_PROPOSALS]
        outcomes = await asyncio.gather(
            *(propose_within(node, command, PROPOSAL_WAIT_MS) for _, command in batch))
        for (name, _), outcome in zip(batch, outcomes, strict=True):
            results[name].error, results[name].message = outcome.error, outcome.message
    return {"throttle_time_ms": 0, "results": [r.to_body() for r in results.values()]}
