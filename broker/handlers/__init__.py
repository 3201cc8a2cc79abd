"""Kafka API handlers: one module per API family, each a function from a decoded
request to a response body. No socket code here."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import TYPE_CHECKING

from broker.handlers.registry import REGISTRY
from broker.server.dispatch import Route

if TYPE_CHECKING:
    from broker.node import Node


def _load_modules() -> None:
    # Importing a module registers its handlers; every module of this package is one.
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def build_routes(node: Node) -> dict[int, Route]:
    _load_modules()
    return {
        key: Route(functools.partial(reg.handler, node), reg.min_version, reg.max_version)
        for key, reg in REGISTRY.items()
    }
