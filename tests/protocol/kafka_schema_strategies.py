"""Hypothesis strategies derived from the generated schemas themselves.

Walking the (uncompiled) construct tree of a message version gives a strategy for every
value that version can carry, so a new spec version is covered without new test code.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from construct import Container, Flag, FormatField
from hypothesis import strategies as st

from broker.protocol.kafka_types import (
    KArray,
    KBytes,
    KOptionalStruct,
    KString,
    KStruct,
    KUuid,
)

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)
_BINARY = st.binary(max_size=12)


def _int_range(fmt: str) -> tuple[int, int]:
    bits = struct.calcsize(">" + fmt) * 8
    if fmt.isupper():
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def strategy(con: Any) -> st.SearchStrategy[Any]:
    if con is Flag:
        return st.booleans()
    if isinstance(con, FormatField):
        fmt = con.fmtstr[1]
        if fmt == "d":
            return st.floats(allow_nan=False)
        low, high = _int_range(fmt)
        # Edges matter more than the middle for a codec.
        return st.one_of(
            st.sampled_from([low, high, 0, -1 if low < 0 else 1]), st.integers(low, high)
        )
    if isinstance(con, KUuid):
        return st.uuids()
    if isinstance(con, KString):
        return st.one_of(st.none(), _TEXT) if con.nullable else _TEXT
    if isinstance(con, KBytes):
        return st.one_of(st.none(), _BINARY) if con.nullable else _BINARY
    if isinstance(con, KArray):
        items = st.lists(strategy(con.subcon), max_size=3)
        return st.one_of(st.none(), items) if con.nullable else items
    if isinstance(con, KOptionalStruct):
        return st.one_of(st.none(), strategy(con.subcon))
    if isinstance(con, KStruct):
        return st.fixed_dictionaries(
            {f.name: strategy(f.con) for f in con.fields if f.con is not None}
        )
    raise TypeError(f"no strategy for {con!r}")


def carried(con: Any, value: Any) -> Any:
    """The part of a decoded value that the version carries on the wire.

    Decoding fills fields a version lacks with defaults; dropping them gives back what
    the strategy generated, so the two compare equal.
    """
    if value is None:
        return None
    if isinstance(con, KOptionalStruct):
        return carried(con.subcon, value)
    if isinstance(con, KArray):
        return [carried(con.subcon, v) for v in value]
    if isinstance(con, KStruct):
        return {f.name: carried(f.con, value[f.name]) for f in con.fields if f.con is not None}
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def all_fields_present(con: Any, value: Any) -> bool:
    """Every field of the spec, carried or not, appears in a decoded struct."""
    if value is None:
        return True
    if isinstance(con, KOptionalStruct):
        return all_fields_present(con.subcon, value)
    if isinstance(con, KArray):
        return all(all_fields_present(con.subcon, v) for v in value)
    if isinstance(con, KStruct):
        if not isinstance(value, Container):
            return False
        return all(
            f.name in value and (f.con is None or all_fields_present(f.con, value[f.name]))
            for f in con.fields
        )
    return True


# (message, version) pairs the kafka-python oracle checked, for the run's summary line.
ORACLE_PAIRS: pytest.StashKey[set[tuple[str, int]]] = pytest.StashKey()
