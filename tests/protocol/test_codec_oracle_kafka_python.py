"""kafka-python as an independent oracle.

kafka-python 3 generates its protocol classes from Kafka's JSON specs (a newer copy
than ours) with its own code. For every (message, version) both know, a value drawn
from our schema is encoded by both: the bodies and whole frames (size prefix and
header) must be byte-identical, and our decoder must read kafka-python's bytes back to
the same field values.
"""

from __future__ import annotations

import importlib
import pkgutil
import struct
import warnings
from io import BytesIO
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kafka_schema_strategies import ORACLE_PAIRS, carried, strategy

from broker.protocol import encode_request, message_names, message_versions, schema
from broker.protocol.catalog import uncompiled
from broker.protocol.codec import _encode_response
from broker.protocol.kafka_types import KArray, KOptionalStruct, KStruct

with warnings.catch_warnings():
    # kafka-python reads its bundled specs through a deprecated importlib API.
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol
    from kafka.protocol.api_data import ApiData
    from kafka.protocol.api_message import ApiMessage

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _their_classes() -> dict[str, type]:
    with warnings.catch_warnings():
        # kafka-python reads its bundled specs through a deprecated importlib API.
        warnings.simplefilter("ignore", DeprecationWarning)
        for info in pkgutil.walk_packages(kafka.protocol.__path__, "kafka.protocol."):
            importlib.import_module(info.name)
    found: dict[str, type] = {}
    todo: list[type] = [ApiMessage, ApiData]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        json = getattr(cls, "_json", None)
        if json is not None and getattr(cls, "_class_version", None) is None:
            found.setdefault(json["name"], cls)
    return found


THEIRS = _their_classes()
OURS = set(message_names())


def _has_field(con: Any, suffix: str) -> bool:
    if isinstance(con, (KArray, KOptionalStruct)):
        return _has_field(con.subcon, suffix)
    if isinstance(con, KStruct):
        return any(
            f.con is not None and (f.name.endswith(suffix) or _has_field(f.con, suffix))
            for f in con.fields
        )
    return False


def _patched_away(cls: type, name: str, version: int) -> bool:
    """kafka-python rewrites some specs (``json_patch``): the *authorized_operations
    int32 fields become bit-field sets, a different Python value for the same bytes."""
    return "json_patch" in cls.__dict__ and _has_field(
        uncompiled(name, version), "authorized_operations"
    )


def _pairs() -> list[tuple[str, int]]:
    pairs = []
    for name, cls in sorted(THEIRS.items()):
        if name not in OURS:
            continue
        their_low, their_high = cls._valid_versions
        low, high = message_versions(name)
        pairs += [
            (name, v)
            for v in range(max(low, their_low), min(high, their_high) + 1)
            if not _patched_away(cls, name, v)
        ]
    return pairs


PAIRS = _pairs()


def _to_theirs(con: Any, field: Any, value: Any) -> Any:
    """Our plain value -> kafka-python's objects (nested DataContainers)."""
    if value is None:
        return None
    if isinstance(con, KOptionalStruct):
        return _to_theirs(con.subcon, field, value)
    if isinstance(con, KArray):
        return [_to_theirs(con.subcon, field, v) for v in value]
    if isinstance(con, KStruct):
        return field.data_class(**_struct_kwargs(con, field.fields, value))
    return value


def _struct_kwargs(
    con: KStruct, their_fields: dict[str, Any], value: dict[str, Any]
) -> dict[str, Any]:
    kwargs = {}
    for f in con.fields:
        if f.con is None:
            continue
        v = value[f.name]
        # Both sides omit a tagged field holding its default, but kafka-python's idea
        # of a tagged struct's default is None; leave such fields out altogether.
        if f.tag is not None and carried(f.con, con._factories[f.name]()) == v:
            continue
        kwargs[f.name] = _to_theirs(f.con, their_fields[f.name], v)
    return kwargs


def _build(compiled: Any, value: Any) -> bytes:
    out = BytesIO()
    compiled.buildfunc(value, out, {})
    return out.getvalue()


def test_oracle_covers_the_common_apis():
    names = {n for n, _ in PAIRS}
    for must in (
        "ProduceRequest",
        "FetchResponse",
        "MetadataResponse",
        "ApiVersionsResponse",
        "JoinGroupRequest",
        "ConsumerProtocolAssignment",
    ):
        assert must in names, must
    assert len(PAIRS) > 400


@pytest.mark.parametrize(("name", "version"), PAIRS, ids=[f"{n}-v{v}" for n, v in PAIRS])
def test_kafka_python_agrees(name: str, version: int, pytestconfig: pytest.Config):
    cls = THEIRS[name]
    con = uncompiled(name, version)
    compiled = schema(name, version)

    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy(con))
    def check(value):
        theirs = cls(version=version, **_struct_kwargs(con, cls._struct.fields, value))
        if issubclass(cls, ApiData):
            # Standalone data (consumer protocol): kafka-python's "header" is the int16
            # version that group members put in front of the body.
            their_body = theirs.encode(version=version, header=False)
            assert struct.pack(">h", version) + their_body == theirs.encode(version=version)
        else:
            their_body = theirs.encode(version=version)
        assert _build(compiled, value) == their_body
        decoded = compiled.parsefunc(BytesIO(their_body), {})
        assert carried(con, decoded) == value
        if not issubclass(cls, ApiMessage):
            return
        api_key = cls._json["apiKey"]
        if cls._json["type"] == "request":
            theirs.with_header(correlation_id=0x1234567, client_id="oracle")
            ours = encode_request(api_key, version, 0x1234567, "oracle", value)
        else:
            theirs.with_header(correlation_id=0x1234567)
            ours = _encode_response(api_key, version, 0x1234567, value)
        # (kafka-python cannot take version= here for responses: its setter touches
        # a request-only header field.)
        assert ours == theirs.encode(header=True, framed=True)

    check()
    pytestconfig.stash.setdefault(ORACLE_PAIRS, set()).add((name, version))
