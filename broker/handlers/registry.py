"""Which handler serves which API, at which versions.

Each handler module registers its functions with `@handles(...)`; the dispatcher's
table, and so the ApiVersions answer, is exactly what is registered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.protocol import SUPPORTED_VERSIONS, Request, api_key_for_name
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

Body = Mapping[str, Any]
NodeHandler = Callable[["Node", ClientInfo, Request], Awaitable[Body | None]]


@dataclass(frozen=True, slots=True)
class Registration:
    api_key: int
    min_version: int
    max_version: int
    handler: NodeHandler


REGISTRY: dict[int, Registration] = {}


def handles(api_name: str, min_version: int = 0, max_version: int | None = None) -> Callable[[NodeHandler], NodeHandler]:
    """Register a handler for `api_name` (the spec's name, e.g. "Produce"), serving
    min_version..max_version (default: every version the codec knows)."""
    api_key = api_key_for_name(api_name)
    codec_min, codec_max = SUPPORTED_VERSIONS[api_key]
    hi = codec_max if max_version is None else max_version
    if not codec_min <= min_version <= hi <= codec_max:
        raise ValueError(f"{api_name}: versions {min_version}-{hi} outside the codec's {codec_min}-{codec_max}")

    def register(fn: NodeHandler) -> NodeHandler:
        if api_key in REGISTRY:
            raise ValueError(f"{api_name} registered twice")
        REGISTRY[api_key] = Registration(api_key, min_version, hi, fn)
        return fn

    return register


def served_versions() -> dict[int, tuple[int, int]]:
    """api key -> (lowest, highest) version the broker answers, every handler loaded."""
    import importlib
    import pkgutil

    import broker.handlers as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return {key: (reg.min_version, reg.max_version) for key, reg in sorted(REGISTRY.items())}
