"""Reads the topic list out of a consumer's JoinGroup metadata.

Members of a group with protocol type "consumer" send a ConsumerProtocolSubscription,
prefixed by its int16 version, as their protocol metadata. The coordinator needs only
the topics, to refuse deleting offsets of a topic the group still consumes.
"""

from __future__ import annotations

import struct

from broker.protocol import ProtocolError, decode_data, message_versions

_SCHEMA = "ConsumerProtocolSubscription"
_VERSION = struct.Struct(">h")


def subscribed_topics(metadata: bytes) -> frozenset[str] | None:
    """The topics named in a ConsumerProtocolSubscription, or None when the bytes are not
    one (callers then assume the member may consume any topic)."""
    if len(metadata) < _VERSION.size:
        return None
    (version,) = _VERSION.unpack_from(metadata, 0)
    if version < 0:
        return None
    # Kafka's rule for this schema: later versions only append fields, so a version newer
    # than the newest known one is read as that one.
    newest = message_versions(_SCHEMA)[1]
    try:
        body = decode_data(_SCHEMA, min(version, newest), memoryview(metadata)[_VERSION.size :])
    except ProtocolError:
        return None
    return frozenset(body.topics)
