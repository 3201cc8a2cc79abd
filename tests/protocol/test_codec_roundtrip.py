"""Every message at every version: decode(encode(x)) == x, bytes stable on re-encode,
and the compiled schema agrees byte for byte with the interpreted one."""

from __future__ import annotations

from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_schema_strategies import all_fields_present, carried, strategy

from broker.protocol import message_names, message_versions, schema
from broker.protocol.catalog import uncompiled

pytestmark = pytest.mark.unit

PAIRS = [
    (name, version)
    for name in message_names()
    for version in range(message_versions(name)[0], message_versions(name)[1] + 1)
]


def _build(compiled, value) -> bytes:
    out = BytesIO()
    compiled.buildfunc(value, out, {})
    return out.getvalue()


def _parse(compiled, data: bytes):
    stream = BytesIO(data)
    value = compiled.parsefunc(stream, {"_buf": memoryview(data)})
    assert stream.tell() == len(data), "decoder left bytes unread"
    return value


def test_every_spec_version_is_covered():
    assert len(PAIRS) > 600
    assert ("FetchRequest", 17) in PAIRS and ("ConsumerProtocolAssignment", 3) in PAIRS


@pytest.mark.parametrize(("name", "version"), PAIRS, ids=[f"{n}-v{v}" for n, v in PAIRS])
def test_round_trip(name: str, version: int):
    con = uncompiled(name, version)
    compiled = schema(name, version)

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy(con))
    def check(value):
        data = _build(compiled, value)
        decoded = _parse(compiled, data)
        assert carried(con, decoded) == value
        assert all_fields_present(con, decoded)
        assert _build(compiled, decoded) == data
        # The interpreted construct is the reference the compiled one must match.
        assert con.build(value) == data
        assert carried(con, con.parse(data)) == value

    check()


@pytest.mark.parametrize(("name", "version"), PAIRS[::7], ids=[f"{n}-v{v}" for n, v in PAIRS[::7]])
def test_empty_mapping_builds_defaults(name: str, version: int):
    compiled = schema(name, version)
    try:
        data = _build(compiled, {})
    except Exception as err:  # a non-nullable field without a default value
        pytest.fail(f"{name} v{version} cannot build from defaults: {err}")
    decoded = _parse(compiled, data)
    assert _build(compiled, decoded) == data


def test_compiled_schemas_never_fall_back_to_interpretation():
    # construct calls back into interpreted code through linkedparsers/linkedbuilders
    # for classes without _emitparse/_emitbuild; the hot path must not.
    for name in (
        "ProduceRequest",
        "FetchResponse",
        "MetadataRequest",
        "ApiVersionsResponse",
        "RequestHeader",
        "ResponseHeader",
        "ConsumerProtocolAssignment",
    ):
        low, high = message_versions(name)
        for version in range(low, high + 1):
            source = schema(name, version).source
            assert "linkedparsers[" not in source and "linkedbuilders[" not in source, (
                name,
                version,
            )


@given(st.data())
@settings(max_examples=30, deadline=None, database=None)
def test_unknown_tagged_fields_survive_a_round_trip(data):
    compiled = schema("ApiVersionsResponse", 3)
    tags = data.draw(
        st.lists(
            st.tuples(st.integers(10, 5000), st.binary(max_size=20)),
            max_size=3,
            unique_by=lambda t: t[0],
        )
    )
    value = {
        "api_keys": [{"api_key": 1, "min_version": 0, "max_version": 17}],
        "_unknown_tags": tags,
    }
    encoded = _build(compiled, value)
    decoded = _parse(compiled, encoded)
    assert sorted(decoded.get("_unknown_tags", [])) == sorted(tags)
    assert decoded.api_keys[0].max_version == 17
    assert _build(compiled, decoded) == encoded
