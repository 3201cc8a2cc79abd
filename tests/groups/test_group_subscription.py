"""Reading subscribed topics out of consumer-protocol metadata."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.groups.subscription import subscribed_topics

from .support import subscription

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_topics_are_read_from_every_subscription_version_a_real_client_writes(version: int):
    encoded = subscription("orders", "payments", "日本", version=version)
    assert subscribed_topics(encoded) == frozenset({"orders", "payments", "日本"})


def test_a_later_version_is_read_by_its_common_prefix():
    newest = subscription("abc", version=3)
    encoded = struct.pack(">h", 9) + newest[2:] + b"fields added later"
    assert subscribed_topics(encoded) == frozenset({"abc"})


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"\xff\xff\x00\x00\x00\x00",  # negative version
        b"\x00\x00\x7f\xff\xff\xff",  # count far beyond the bytes present
        b"\x00\x00\x00\x00\x00\x01\x00\x05ab",  # name longer than the rest
        b"\x00\x00\x00\x00\x00\x01\x00\x02\xff\xfe",  # not UTF-8
        b"\x00\x00\xff\xff\xff\xff",  # negative count
    ],
)
def test_malformed_metadata_reads_as_unknown(garbage: bytes):
    assert subscribed_topics(garbage) is None


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(data: bytes):
    result = subscribed_topics(data)
    assert result is None or isinstance(result, frozenset)


@given(st.lists(st.text(min_size=0, max_size=20), max_size=8), st.integers(0, 3))
def test_round_trip_with_the_client_encoder(topics: list[str], version: int):
    assert subscribed_topics(subscription(*topics, version=version)) == frozenset(topics)
