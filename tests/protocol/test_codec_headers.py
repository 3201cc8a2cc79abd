"""Header versions per API version, and the public request/response API around them."""

from __future__ import annotations

import struct

import pytest

from broker.protocol import (
    API_KEYS,
    SUPPORTED_VERSIONS,
    MalformedMessageError,
    ProtocolError,
    Request,
    UnknownApiError,
    UnsupportedVersionError,
    api_key_for_name,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    is_flexible,
    request_header_version,
    response_header_version,
)

pytestmark = pytest.mark.unit


def test_tables_name_the_apis():
    assert API_KEYS[0] == "Produce" and API_KEYS[1] == "Fetch" and API_KEYS[18] == "ApiVersions"
    assert api_key_for_name("Metadata") == 3 == api_key_for_name("MetadataRequest")
    assert SUPPORTED_VERSIONS[18] == (0, 4)
    assert set(API_KEYS) == set(SUPPORTED_VERSIONS)
    with pytest.raises(UnknownApiError):
        api_key_for_name("NoSuchThing")


@pytest.mark.parametrize(
    ("api_key", "version", "flexible", "req_hdr", "resp_hdr"),
    [
        (18, 2, False, 1, 0),
        (18, 3, True, 2, 0),  # ApiVersions responses keep header v0 even when flexible
        (18, 4, True, 2, 0),
        (7, 0, False, 0, 0),  # ControlledShutdown v0: request header without client id
        (7, 1, False, 1, 0),
        (7, 3, True, 2, 1),
        (0, 8, False, 1, 0),
        (0, 9, True, 2, 1),
        (1, 11, False, 1, 0),
        (1, 12, True, 2, 1),
        (3, 8, False, 1, 0),
        (3, 9, True, 2, 1),
    ],
)
def test_header_versions(api_key, version, flexible, req_hdr, resp_hdr):
    assert is_flexible(api_key, version) is flexible
    assert request_header_version(api_key, version) == req_hdr
    assert response_header_version(api_key, version) == resp_hdr


def test_api_versions_v3_response_uses_header_v0_on_the_wire():
    request = decode_request(encode_request(18, 3, 42, "c", {})[4:])
    frame = encode_response(
        request, {"api_keys": [{"api_key": 18, "min_version": 0, "max_version": 4}]}
    )
    size, correlation_id = struct.unpack(">ii", frame[:8])
    assert size == len(frame) - 4 and correlation_id == 42
    # header v0 ends after the correlation id: the body's error_code follows at once
    assert frame[8:10] == b"\x00\x00" and frame[10] == 2  # compact array of one
    assert decode_response(18, 3, frame[4:])[1].api_keys[0].max_version == 4


def test_flexible_response_has_header_tagged_section():
    request = decode_request(encode_request(3, 12, 5, "c", {"topics": None})[4:])
    frame = encode_response(request, {})
    assert frame[8] == 0  # empty header tagged fields
    assert decode_response(3, 12, frame[4:])[0] == 5


def test_controlled_shutdown_v0_has_no_client_id():
    frame = encode_request(7, 0, 9, "ignored", {"broker_id": 3})
    assert len(frame) == 4 + 8 + 4
    request = decode_request(frame[4:])
    assert request.client_id is None and request.header_version == 0 and request.body.broker_id == 3


def test_request_fields_and_defaults():
    frame = encode_request(3, 12, 77, "walrus", {"topics": [{"name": "t"}]})
    request = decode_request(frame[4:])
    assert isinstance(request, Request)
    assert (request.api_key, request.api_version, request.correlation_id) == (3, 12, 77)
    assert request.client_id == "walrus" and request.header_version == 2
    assert request.body.topics[0].name == "t"
    assert request.body.allow_auto_topic_creation is True  # spec default
    assert request.body.topics[0]["topic_id"].int == 0


def test_null_client_id_round_trips():
    request = decode_request(encode_request(18, 0, 1, None, {})[4:])
    assert request.client_id is None


def test_records_accept_any_buffer_and_decode_as_views():
    batch = bytes(range(256)) * 4
    for records in (batch, bytearray(batch), memoryview(batch)):
        body = {
            "acks": -1,
            "timeout_ms": 1000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": records}]}],
        }
        request = decode_request(encode_request(0, 9, 1, "p", body)[4:])
        got = request.body.topic_data[0].partition_data[0].records
        assert isinstance(got, memoryview) and got == batch
    request = decode_request(
        bytearray(
            encode_request(
                0,
                3,
                1,
                "p",
                {"topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": None}]}]},
            )[4:]
        )
    )
    assert request.body.topic_data[0].partition_data[0].records is None


def test_unknown_api_and_unsupported_version_keep_the_correlation_id():
    with pytest.raises(UnknownApiError) as unknown:
        decode_request(struct.pack(">hhi", 999, 0, 1234) + b"\x00\x00")
    assert unknown.value.correlation_id == 1234 and unknown.value.api_key == 999
    with pytest.raises(UnsupportedVersionError) as unsupported:
        decode_request(struct.pack(">hhi", 18, 99, 4321) + b"\x00\x00")
    err = unsupported.value
    assert (err.api_key, err.api_version, err.correlation_id) == (18, 99, 4321)


def test_truncated_header_and_body_are_malformed():
    frame = encode_request(3, 9, 55, "c", {"topics": [{"name": "abc"}]})[4:]
    with pytest.raises(MalformedMessageError) as short_body:
        decode_request(frame[:-2])
    assert short_body.value.correlation_id == 55
    with pytest.raises(MalformedMessageError) as short_header:
        decode_request(frame[:5])
    assert short_header.value.api_key == 3 and short_header.value.correlation_id is None


def test_trailing_bytes_are_ignored_and_counted():
    frame = encode_request(18, 0, 1, "c", {})[4:]
    request = decode_request(frame + b"junk")
    assert request.trailing_bytes == 4 and request.correlation_id == 1


def test_encode_errors_are_protocol_errors():
    request = decode_request(encode_request(18, 0, 1, "c", {})[4:])
    with pytest.raises(ProtocolError):
        encode_response(request, {"error_code": 1 << 20})
    with pytest.raises(ProtocolError):
        encode_response(request, {"api_keys": [{"api_key": "x"}]})
    with pytest.raises(ProtocolError):
        encode_request(0, 9, 1, "c", {"topic_data": [{"name": None}]})  # non-nullable


def test_strict_encoding_names_misspelt_fields():
    from broker.protocol import encode_data, unknown_fields

    request = decode_request(encode_request(3, 12, 1, "c", {})[4:])
    body = {
        "topics": [{"name": "t", "partitons": [], "_unknown_tags": []}],
        "brokers": [],
        "cluster_id": None,
    }
    # Lenient by default: the misspelt key is ignored, the field takes its default.
    assert decode_response(3, 12, encode_response(request, body)[4:])[1].topics[0].partitions == []
    with pytest.raises(ProtocolError, match=r"topics\[0\]\.partitons"):
        encode_response(request, body, strict=True)
    # Fields of other versions are known (and not written), not errors.
    assert unknown_fields("MetadataResponse", 0, {"cluster_id": "x", "throttle_time_ms": 1}) == []
    assert unknown_fields("FetchRequest", 4, {"topics": [{"topic": "t", "partitionz": []}]}) == [
        "topics[0].partitionz"
    ]
    with pytest.raises(ProtocolError):
        encode_request(18, 3, 1, "c", {"client_software_nam": "x"}, strict=True)
    with pytest.raises(ProtocolError):
        encode_data("ConsumerProtocolAssignment", 0, {"assigned_partition": []}, strict=True)
