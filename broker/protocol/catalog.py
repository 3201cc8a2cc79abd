"""Tables of APIs and versions, and the compiled schema for any (message, version).

Compiling a schema costs milliseconds, so it happens on first use and is cached;
``warm_up`` compiles a chosen set ahead of time (the broker's served APIs at start-up).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from broker.protocol.exceptions import UnknownApiError, UnsupportedVersionError
from broker.protocol.generated import MESSAGES

# name -> (module, kind, api key, (low, high), flexible from)
_Entry = tuple[str, str, int | None, tuple[int, int], int | None]

API_KEYS: dict[int, str] = {
    key: name.removesuffix("Request")
    for name, (_m, kind, key, _v, _f) in MESSAGES.items()
    if kind == "request" and key is not None
}
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    key: versions
    for _name, (_m, kind, key, versions, _f) in MESSAGES.items()
    if kind == "request" and key is not None
}
_FLEXIBLE_FROM: dict[int, int | None] = {
    key: flex
    for _n, (_m, kind, key, _v, flex) in MESSAGES.items()
    if kind == "request" and key is not None
}
_KEY_FOR_NAME = {name: key for key, name in API_KEYS.items()}

_compiled: dict[Callable[[], Any], Any] = {}


def api_key_for_name(name: str) -> int:
    """``"Produce"`` (or ``"ProduceRequest"``) -> 0."""
    key = _KEY_FOR_NAME.get(name.removesuffix("Request").removesuffix("Response"))
    if key is None:
        raise UnknownApiError(f"no API named {name!r}")
    return key


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether this API version uses compact encodings and tagged fields."""
    check_version(api_key, api_version)
    flex = _FLEXIBLE_FROM[api_key]
    return flex is not None and api_version >= flex


def check_version(api_key: int, api_version: int) -> None:
    versions = SUPPORTED_VERSIONS.get(api_key)
    if versions is None:
        raise UnknownApiError(
            f"unknown API key {api_key}", api_key=api_key, api_version=api_version
        )
    low, high = versions
    if not low <= api_version <= high:
        raise UnsupportedVersionError(
            f"{API_KEYS[api_key]} v{api_version} is outside {low}-{high}",
            api_key=api_key,
            api_version=api_version,
        )


def message_names() -> list[str]:
    return list(MESSAGES)


def message_versions(name: str) -> tuple[int, int]:
    entry = MESSAGES.get(name)
    if entry is None:
        raise UnknownApiError(f"no message schema named {name!r}")
    return entry[3]


def uncompiled(name: str, version: int) -> Any:
    """A fresh, uncompiled (interpreted) construct for the message at that version."""
    return _factory(name, version)()


def schema(name: str, version: int) -> Any:
    """The compiled construct for a message (``"FetchRequest"``, ``"RequestHeader"``,
    ``"ConsumerProtocolAssignment"``...) at one version."""
    factory = _factory(name, version)
    compiled = _compiled.get(factory)
    if compiled is None:
        compiled = factory().compile()
        _compiled[factory] = compiled
    return compiled


def request_schema(api_key: int, api_version: int) -> Any:
    check_version(api_key, api_version)
    return schema(API_KEYS[api_key] + "Request", api_version)


def response_schema(api_key: int, api_version: int) -> Any:
    check_version(api_key, api_version)
    return schema(API_KEYS[api_key] + "Response", api_version)


def warm_up(api_keys: Iterable[int] | None = None) -> int:
    """Compile request and response schemas of these APIs (all when None); returns count."""
    count = 0
    for key in SUPPORTED_VERSIONS if api_keys is None else api_keys:
        low, high = SUPPORTED_VERSIONS[key]
        for version in range(low, high + 1):
            request_schema(key, version)
            response_schema(key, version)
            count += 2
    return count


def _factory(name: str, version: int) -> Callable[[], Any]:
    entry = MESSAGES.get(name)
    if entry is None:
        raise UnknownApiError(f"no message schema named {name!r}")
    module = importlib.import_module(f"broker.protocol.generated.{entry[0]}")
    factory: Callable[[], Any] | None = module.SCHEMAS.get(version)
    if factory is None:
        low, high = entry[3]
        raise UnsupportedVersionError(
            f"{name} v{version} is outside {low}-{high}", api_version=version
        )
    return factory
