"""KafkaJS's golden vectors (../shared/kafka-protocol/vectors/kafkajs) as a further oracle.

Requests were encoded by KafkaJS, responses captured from real Apache Kafka brokers.
Each must decode at its version without leftover bytes and re-encode to the same bytes.
For flexible versions the fixtures start with the header's empty tagged-field section
(one 0x00 byte), which is stripped here.
"""

from __future__ import annotations

import json
import re
import struct
from io import BytesIO
from pathlib import Path

import pytest

from broker.protocol import (
    MalformedMessageError,
    ProtocolError,
    api_key_for_name,
    decode_data,
    decode_response,
    encode_data,
    is_flexible,
    schema,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3] / "shared" / "kafka-protocol" / "vectors" / "kafkajs"
_MESSAGE = re.compile(r"^v(\d+)_(request|response)(?:_.*?)?(?:\.json)?\.json$")

# Files that hold something other than a request/response body, with what they hold.
OTHER_PAYLOADS = {
    "describeGroups/v1_memberAssignment.json": ("ConsumerProtocolAssignment", None),
    "describeGroups/v1_memberMetadata.json": ("ConsumerProtocolSubscription", None),
    "joinGroup/v1_assignerMetadata.json": ("ConsumerProtocolSubscription", None),
    "joinGroup/v2_assignerMetadata.json": ("ConsumerProtocolSubscription", None),
    "syncGroup/v1_memberAssignment.json": ("ConsumerProtocolAssignment", None),
    "fetch/v4_from_scala_producer_response.json": ("FetchResponse", 4),
    "metadata/v5_offline_replicas_response.json": ("MetadataResponse", 5),
}
# SASL mechanism payloads (PLAIN / SCRAM text), carried opaquely inside
# SaslAuthenticate's auth_bytes: nothing for the Kafka codec to decode.
SASL_PAYLOADS = {
    "saslAuthenticate/plain_bytes.json",
    "saslAuthenticate/scram256_bytes.json",
    "saslAuthenticate/scram256_firstRequest_response.json",
    "saslAuthenticate/scram256_firstRequest_response_v1.json",
}
# KafkaJS labels its subscription version 1 but writes only the v0 fields (no
# owned_partitions): the body is valid v0 and, read strictly, truncated v1.
V0_BODY_LABELLED_V1 = {
    "describeGroups/v1_memberMetadata.json",
    "joinGroup/v1_assignerMetadata.json",
    "joinGroup/v2_assignerMetadata.json",
}
# Captured from a broker that predates the field: not a valid v1 body, and the decoder
# must say so rather than guess.
MALFORMED = {"apiVersions/v1_response_missing_throttle_time.json"}


def _vectors() -> list[str]:
    if not ROOT.is_dir():
        return []
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("*/*.json"))


VECTORS = _vectors()


def _load(rel: str) -> bytes:
    return bytes(json.loads((ROOT / rel).read_text())["data"])


def _round_trip(name: str, version: int, data: bytes) -> None:
    compiled = schema(name, version)
    stream = BytesIO(data)
    value = compiled.parsefunc(stream, {"_buf": memoryview(data)})
    assert stream.tell() == len(data), f"{len(data) - stream.tell()} bytes left over"
    out = BytesIO()
    compiled.buildfunc(value, out, {})
    assert out.getvalue() == data


def test_vectors_are_present():
    if not ROOT.is_dir():
        pytest.fail(f"KafkaJS vectors missing: {ROOT}")
    assert len(VECTORS) > 150


@pytest.mark.parametrize("rel", VECTORS)
def test_kafkajs_vector(rel: str):
    data = _load(rel)
    if rel in SASL_PAYLOADS:
        # Still a valid SaslAuthenticate auth_bytes value: int32 length + payload.
        assert struct.unpack(">i", data[:4])[0] == len(data) - 4
        return
    if rel in OTHER_PAYLOADS:
        name, version = OTHER_PAYLOADS[rel]
        if version is None:
            # Consumer-protocol data: an int16 version, then the body at that version.
            version = struct.unpack(">h", data[:2])[0]
            if rel in V0_BODY_LABELLED_V1:
                with pytest.raises(MalformedMessageError):
                    decode_data(name, version, data[2:])
                version = 0
            value = decode_data(name, version, data[2:])
            assert encode_data(name, version, value) == data[2:]
            assert value.topics if "Subscription" in name else value.assigned_partitions
            return
        _round_trip(name, version, data)
        return
    match = _MESSAGE.match(Path(rel).name)
    assert match, f"unrecognised vector name {rel}"
    version, kind = int(match[1]), match[2]
    api = Path(rel).parent.name
    name = api[0].upper() + api[1:] + kind.capitalize()
    key = api_key_for_name(name)
    flexible = is_flexible(key, version) and not (key == 18 and kind == "response")
    if flexible:
        assert data[0] == 0, "expected the header's empty tagged-field section"
        data = data[1:]
    if rel in MALFORMED:
        with pytest.raises(MalformedMessageError):
            decode_response(key, version, struct.pack(">i", 1) + data)
        return
    try:
        _round_trip(name, version, data)
    except ProtocolError as err:
        pytest.fail(f"{rel}: {err}")
