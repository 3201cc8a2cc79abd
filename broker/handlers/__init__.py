"""Kafka API handlers: one module per API family, each a function from a decoded
request to a response body. No socket code here."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from broker.handlers.registry import REGISTRY, served_versions
from broker.server.dispatch import Route

if TYPE_CHECKING:
    from broker.node import Node


def build_routes(node: Node) -> dict[int, Route]:
    served_versions()  # imports every handler module, which registers it
    return {
        key: Route(functools.partial(reg.handler, node), reg.min_version, reg.max_version)
        for key, reg in REGISTRY.items()
    }
