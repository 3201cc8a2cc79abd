"""ApiVersions: what this broker serves, exactly as registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.handlers.registry import REGISTRY, Body, handles
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node


def served_api_keys() -> list[dict[str, int]]:
    return [
        {"api_key": key, "min_version": reg.min_version, "max_version": reg.max_version}
        for key, reg in sorted(REGISTRY.items())
    ]


@handles("ApiVersions")
async def api_versions(node: Node, client: ClientInfo, request: Request) -> Body:
    return {
        "error_code": ErrorCode.NONE,
        "api_keys": served_api_keys(),
        "throttle_time_ms": 0,
        "supported_features": [],
        "finalized_features_epoch": -1,
        "finalized_features": [],
        "zk_migration_ready": False,
    }
