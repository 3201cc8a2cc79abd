"""Random and mutated frames: only ProtocolError escapes, and every frame is quick.

Seeds are valid frames for every request and response version, filled with random
values drawn from the schemas; mutations flip bytes, truncate, extend, splice, and
plant huge or negative lengths. The seed is printed so that a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from construct import Flag, FormatField

from broker.protocol import (
    API_KEYS,
    SUPPORTED_VERSIONS,
    MalformedMessageError,
    ProtocolError,
    decode_data,
    decode_request,
    decode_response,
    encode_data,
    encode_request,
)
from broker.protocol.catalog import uncompiled
from broker.protocol.codec import _encode_response
from broker.protocol.kafka_types import KArray, KBytes, KOptionalStruct, KString, KStruct, KUuid

pytestmark = pytest.mark.unit

FRAMES_PER_RUN = int(os.environ.get("WALRUS_FUZZ_FRAMES", "150000"))
# Generous: a shared 2-core machine stalls now and then; a hang or an unbounded
# allocation would take far longer than this.
MAX_SECONDS_PER_FRAME = 1.0

_HUGE = [
    b"\x7f\xff\xff\xff",
    b"\xff\xff\xff\xfe",
    b"\x80\x00\x00\x00",
    b"\x7f\xff",
    b"\xff\xff\xff\xff\x0f",
    b"\x80\x80\x80\x80\x80\x80",
    b"\xfe\xff\xff\xff\x07",
]


def _random_value(con: Any, rng: random.Random) -> Any:
    if con is Flag:
        return rng.random() < 0.5
    if isinstance(con, FormatField):
        fmt = con.fmtstr[1]
        if fmt == "d":
            return rng.uniform(-1e9, 1e9)
        bits = struct.calcsize(">" + fmt) * 8
        return (
            rng.randrange(0, 2**bits)
            if fmt.isupper()
            else rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))
        )
    if isinstance(con, KUuid):
        return uuid.UUID(int=rng.getrandbits(128))
    if isinstance(con, KString):
        return (
            None
            if con.nullable and rng.random() < 0.2
            else "".join(rng.choice("abcxyz-é€") for _ in range(rng.randrange(6)))
        )
    if isinstance(con, KBytes):
        return None if con.nullable and rng.random() < 0.2 else rng.randbytes(rng.randrange(24))
    if isinstance(con, KArray):
        if con.nullable and rng.random() < 0.2:
            return None
        return [_random_value(con.subcon, rng) for _ in range(rng.randrange(3))]
    if isinstance(con, KOptionalStruct):
        return None if rng.random() < 0.3 else _random_value(con.subcon, rng)
    if isinstance(con, KStruct):
        return {f.name: _random_value(f.con, rng) for f in con.fields if f.con is not None}
    raise TypeError(con)


def _seeds(rng: random.Random) -> list[tuple[str, int, int, bytes]]:
    """(kind, api key, version, frame without size prefix)."""
    seeds = []
    for key in API_KEYS:
        low, high = SUPPORTED_VERSIONS[key]
        for version in range(low, high + 1):
            name = API_KEYS[key]
            req = _random_value(uncompiled(name + "Request", version), rng)
            seeds.append(
                (
                    "request",
                    key,
                    version,
                    encode_request(key, version, rng.randrange(2**31), "fz", req)[4:],
                )
            )
            resp = _random_value(uncompiled(name + "Response", version), rng)
            seeds.append(("response", key, version, _encode_response(key, version, 7, resp)[4:]))
    for name, high in (("ConsumerProtocolAssignment", 3), ("ConsumerProtocolSubscription", 3)):
        for version in range(high + 1):
            value = _random_value(uncompiled(name, version), rng)
            seeds.append((name, -1, version, encode_data(name, version, value)))
    return seeds


def _mutate(frame: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip bits
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncate
            del data[pos:]
        elif op == 2:  # extend with noise
            data += rng.randbytes(rng.randrange(1, 32))
        elif op == 3:  # plant a huge / negative length or an endless varint
            big = rng.choice(_HUGE)
            data[pos : pos + len(big)] = big
        elif op == 4 and data:  # random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 5:  # splice in part of another frame
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            data[pos:pos] = other[start : start + rng.randrange(1, 40)]
        else:  # delete a slice
            del data[pos : pos + rng.randrange(1, 8)]
    return bytes(data)


def _decoder(kind: str, key: int, version: int) -> Callable[[bytes], Any]:
    if kind == "request":
        return decode_request
    if kind == "response":
        return lambda frame: decode_response(key, version, frame)
    return lambda frame: decode_data(kind, version, frame)


def test_fuzzed_frames_only_raise_protocol_error(capsys: pytest.CaptureFixture[str]):
    seed = int(os.environ.get("WALRUS_FUZZ_SEED", str(random.randrange(2**32))))
    rng = random.Random(seed)
    seeds = _seeds(rng)
    pool = [frame for *_, frame in seeds]
    for kind, key, version, frame in seeds:  # every seed is valid as encoded
        _decoder(kind, key, version)(frame)

    outcomes = {"decoded": 0, "rejected": 0}
    slowest = 0.0
    started = time.perf_counter()
    for i in range(FRAMES_PER_RUN):
        kind, key, version, frame = rng.choice(seeds)
        if i % 10 == 0:
            data = rng.randbytes(rng.randrange(64))
            if kind == "request" and rng.random() < 0.5:  # valid prefix, noise after
                data = frame[:8] + data
        else:
            data = _mutate(frame, rng, pool)
        decode = _decoder(kind, key, version)
        t0 = time.perf_counter()
        try:
            decode(data)
            outcomes["decoded"] += 1
        except ProtocolError:
            outcomes["rejected"] += 1
        except BaseException as err:
            pytest.fail(
                f"seed={seed} frame {i} ({kind} {key} v{version}) {data.hex()}: "
                f"{type(err).__name__}: {err}"
            )
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, elapsed)
        assert elapsed < MAX_SECONDS_PER_FRAME, (
            f"seed={seed} frame {i} took {elapsed:.3f}s: {data.hex()}"
        )
    total = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nprotocol fuzz: seed={seed} frames={FRAMES_PER_RUN} decoded={outcomes['decoded']} "
            f"rejected={outcomes['rejected']} slowest={slowest * 1e3:.2f}ms total={total:.1f}s"
        )
    assert outcomes["rejected"] > FRAMES_PER_RUN // 4  # the mutations do bite


def test_declared_lengths_are_checked_before_allocation():
    # Tiny frames declaring a 2**31-1 element array must fail before any allocation.
    header = struct.pack(">hhih", 19, 0, 1, 2) + b"c1"  # CreateTopics v0
    with pytest.raises(MalformedMessageError, match="exceeds"):
        decode_request(header + b"\x7f\xff\xff\xff")
    header = struct.pack(">hhih", 0, 3, 1, -1)  # Produce v3, null client id
    with pytest.raises(MalformedMessageError):
        decode_request(
            header + b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x00\x00" + b"\x7f\xff\xff\xff"
        )
