"""FindCoordinator, and the one rule that says which node coordinates a group.

Every group handler asks `coordinates(node, group_id)` first, so moving groups between
nodes is a change to `coordinator_for` (and `hash_pick`, its hash, which FindCoordinator
also runs over the registered brokers while this node's metadata lags) alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from broker.coordination.model import Broker
from broker.handlers.registry import Body, handles
from broker.handlers.told_brokers import hash_pick, told_brokers
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import group_allowed
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.groups import GroupCoordinator
    from broker.node import Node

GROUP_KEY = 0
TRANSACTION_KEY = 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def coordinator_for(node: Node, key: str) -> Broker | None:
    """The broker coordinating group `key`: rendezvous hashing of the key over the live
    brokers (so every node computes the same answer from the same metadata, and a node
    joining or leaving moves only the groups it gains or held). In a one-node cluster
    that is always this node. None when no broker is known alive (metadata still
    loading)."""
    with node.metadata() as state:
        return hash_pick(state.live_brokers(_now_ms()), key)


def advertised_coordinator(node: Node, key: str) -> Broker | None:
    """The coordinator FindCoordinator names for `key`: coordinator_for, except while
    this node's metadata is known to lag (told_brokers), when the same hash runs over
    every registered broker. After a partition heals every one of them is usually alive
    again, so that is the node the up-to-date ones compute; a wrong guess costs the
    client a NOT_COORDINATOR and another FindCoordinator, as an empty answer would.
    Never this node itself then: coordinates() says no until its own heartbeat is
    applied again."""
    with node.metadata() as state:
        told = told_brokers(node, state, _now_ms())
    if not told.stale:
        return coordinator_for(node, key)
    chosen = hash_pick(told.brokers, key)
    return None if chosen is None or chosen.node_id == node.node_id else chosen


def coordinates(node: Node, group_id: str) -> bool:
    """Whether this node is the coordinator of `group_id`."""
    chosen = coordinator_for(node, group_id)
    return chosen is not None and chosen.node_id == node.node_id


def _no_coordinator(key: str, code: ErrorCode, message: str) -> dict[str, Any]:
    return {
        "key": key, "node_id": -1, "host": "", "port": -1,
        "error_code": code, "error_message": message,
    }


def _find_one(node: Node, key: str, key_type: int, listener: str) -> dict[str, Any]:
    if key_type == TRANSACTION_KEY:
        return _no_coordinator(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, "transactions are not served")
    if key_type != GROUP_KEY:
        # Share groups (key type 2, v6) and anything newer are not served.
        return _no_coordinator(key, ErrorCode.INVALID_REQUEST, f"unsupported key type {key_type}")
    if node.groups is None:
        return _no_coordinator(key, ErrorCode.COORDINATOR_NOT_AVAILABLE, "groups not started")
    chosen = advertised_coordinator(node, key)
    if chosen is None:
        return _no_coordinator(key, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                               "no live broker, or this node's metadata is catching up")
    address = chosen.address_for(listener)
    if address is None:
        return _no_coordinator(key, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                               f"the coordinator has no listener {listener}")
    return {
        "key": key, "node_id": chosen.node_id, "host": address[0], "port": address[1],
        "error_code": ErrorCode.NONE, "error_message": None,
    }


@handles("FindCoordinator")
async def find_coordinator(node: Node, client: ClientInfo, request: Request) -> Body:
    body = request.body
    version = request.api_version
    key_type = body.key_type if version >= 1 else GROUP_KEY

    def answer(key: str) -> dict[str, Any]:
        if key_type == GROUP_KEY and not group_allowed(node, client, request, AclOperation.DESCRIBE, key):
            return _no_coordinator(key, ErrorCode.GROUP_AUTHORIZATION_FAILED, "Group authorization failed.")
        return _find_one(node, key, key_type, client.listener)

    if version >= 4:
        # v4+ (KIP-699) asks for many keys at once and answers each on its own.
        return {
            "throttle_time_ms": 0,
            "coordinators": [answer(key) for key in body.coordinator_keys],
        }
    found = answer(body.key)
    del found["key"]
    found["throttle_time_ms"] = 0
    return found


def serving(node: Node, group_id: str) -> tuple[GroupCoordinator | None, ErrorCode]:
    """The coordinator to ask about `group_id`, or the error a client gets instead:
    NOT_COORDINATOR sends it back to FindCoordinator."""
    if node.groups is None:
        return None, ErrorCode.COORDINATOR_NOT_AVAILABLE
    if not coordinates(node, group_id):
        return None, ErrorCode.NOT_COORDINATOR
    # The group may have been coordinated elsewhere since this node last served it.
    node.groups.take_over(group_id)
    return node.groups, ErrorCode.NONE
