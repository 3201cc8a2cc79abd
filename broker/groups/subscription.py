"""Reads the topic list out of a consumer's JoinGroup metadata.

Members of a group with protocol type "consumer" send a ConsumerProtocolSubscription
(a version int16, then the topics) as their protocol metadata. The coordinator needs only
the topics, to refuse deleting offsets of a topic the group still consumes. Every version
(0-3, and later ones by Kafka's compatibility rule) starts with the same two fields, so
only those are read.
"""

from __future__ import annotations

import struct

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def subscribed_topics(metadata: bytes) -> frozenset[str] | None:
    """The topics named in a ConsumerProtocolSubscription, or None when the bytes are not
    one (callers then assume the member may consume any topic)."""
    try:
        (version,) = _INT16.unpack_from(metadata, 0)
        if version < 0:
            return None
        (count,) = _INT32.unpack_from(metadata, 2)
        # Each name takes at least its 2-byte length; a larger count is malformed.
        if count < 0 or count * 2 > len(metadata) - 6:
            return None
        pos = 6
        topics = []
        for _ in range(count):
            (length,) = _INT16.unpack_from(metadata, pos)
            pos += 2
            if length < 0 or pos + length > len(metadata):
                return None
            topics.append(bytes(metadata[pos : pos + length]).decode("utf-8"))
            pos += length
        return frozenset(topics)
    except (struct.error, UnicodeDecodeError):
        return None
