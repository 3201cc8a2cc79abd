"""Sans-IO Kafka wire codec, generated from Kafka's JSON message specs.

Regenerate the schemas with ``python -m broker.protocol.codegen``. Bodies are
``construct.Container`` objects with the spec's field names in snake_case
(``body.topics[0].partitions[0].records``); every field of the spec is present at every
version, holding its default where the version does not carry it.
"""

from broker.protocol.catalog import (
    API_KEYS,
    SUPPORTED_VERSIONS,
    api_key_for_name,
    is_flexible,
    message_names,
    message_versions,
    schema,
    warm_up,
)
from broker.protocol.codec import (
    Request,
    decode_data,
    decode_request,
    decode_response,
    encode_data,
    encode_request,
    encode_response,
)
from broker.protocol.exceptions import (
    MalformedMessageError,
    ProtocolError,
    UnknownApiError,
    UnsupportedVersionError,
)
from broker.protocol.field_check import unknown_fields
from broker.protocol.headers import request_header_version, response_header_version

__all__ = [
    "API_KEYS",
    "SUPPORTED_VERSIONS",
    "MalformedMessageError",
    "ProtocolError",
    "Request",
    "UnknownApiError",
    "UnsupportedVersionError",
    "api_key_for_name",
    "decode_data",
    "decode_request",
    "decode_response",
    "encode_data",
    "encode_request",
    "encode_response",
    "is_flexible",
    "message_names",
    "message_versions",
    "request_header_version",
    "response_header_version",
    "schema",
    "unknown_fields",
    "warm_up",
]
