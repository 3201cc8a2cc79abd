"""Authorization as the handlers ask for it: one call per resource a request touches.

A client is the principal its connection authenticated as (SASL, broker/handlers/
sasl.py), or `User:ANONYMOUS` on a listener without authentication, seen from its
connection's address. Requests from a connection that proved it is a
Walrus node (broker/security/node_identity.py) act as Kafka's inter-broker principal, a
super user; a client id proves nothing. With no ACL
in the cluster and `allow_everyone_if_no_acl_found` on (the default) every check
returns at the first test, so the hot paths pay two attribute reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from broker.protocol import Request
from broker.security.acl import CLUSTER_RESOURCE_NAME, AclOperation, ResourceType
from broker.security.authorizer import Identity, decide, decide_any
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

ANONYMOUS = "User:ANONYMOUS"


def unrestricted(node: Node) -> bool:
    """True when no ACL can refuse anything (none exist and none are required)."""
    return node.state.acls.index.count == 0 and node.config.allow_everyone_if_no_acl_found


def identity(client: ClientInfo) -> Identity:
    return Identity(client.principal, client.host)


def allowed(node: Node, client: ClientInfo, request: Request, operation: AclOperation,
            resource_type: ResourceType, name: str) -> bool:
    """May this request's sender perform `operation` on the named resource?"""
    index = node.state.acls.index
    config = node.config
    if index.count == 0 and config.allow_everyone_if_no_acl_found:
        return True
    if client.node_id is not None:  # a proven node acts as the inter-broker principal
        return True
    return decide(index, identity(client), operation, resource_type, name,
                  allow_everyone_if_no_acl_found=config.allow_everyone_if_no_acl_found,
                  super_users=config.super_users)


def cluster_allowed(node: Node, client: ClientInfo, request: Request, operation: AclOperation) -> bool:
    return allowed(node, client, request, operation, ResourceType.CLUSTER, CLUSTER_RESOURCE_NAME)


def topic_allowed(node: Node, client: ClientInfo, request: Request, operation: AclOperation, topic: str) -> bool:
    return allowed(node, client, request, operation, ResourceType.TOPIC, topic)


def group_allowed(node: Node, client: ClientInfo, request: Request, operation: AclOperation, group: str) -> bool:
    return allowed(node, client, request, operation, ResourceType.GROUP, group)


def denied_topics(node: Node, client: ClientInfo, request: Request, operation: AclOperation,
                  topics: Iterable[str | None]) -> frozenset[str]:
    """The topics among `topics` the sender may not `operation` (empty at no cost when
    nothing is restricted)."""
    if node.state.acls.index.count == 0 and node.config.allow_everyone_if_no_acl_found:
        return frozenset()
    return frozenset(
        t for t in topics
        if t is not None and not allowed(node, client, request, operation, ResourceType.TOPIC, t)
    )


def allowed_on_any(node: Node, client: ClientInfo, request: Request, operation: AclOperation,
                   resource_type: ResourceType) -> bool:
    """May the sender perform `operation` on some resource of the type?"""
    index = node.state.acls.index
    config = node.config
    if index.count == 0 and config.allow_everyone_if_no_acl_found:
        return True
    if client.node_id is not None:  # a proven node acts as the inter-broker principal
        return True
    return decide_any(index, identity(client), operation, resource_type,
                      allow_everyone_if_no_acl_found=config.allow_everyone_if_no_acl_found,
                      super_users=config.super_users)


# The operations Kafka reports as "authorized operations" for each resource type.
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
                         AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
                         AclOperation.ALTER_CONFIGS),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE),
    ResourceType.CLUSTER: (AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE,
                           AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
                           AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE),
}


def authorized_operations(node: Node, client: ClientInfo, request: Request, resource_type: ResourceType,
                          name: str) -> int:
    """Kafka's authorized-operations bit field (bit n: AclOperation code n) for what the
    sender may do to the resource, as Metadata, DescribeGroups and DescribeCluster report."""
    bits = 0
    for operation in SUPPORTED_OPERATIONS[resource_type]:
        if allowed(node, client, request, operation, resource_type, name):
            bits |= 1 << int(operation)
    return bits
