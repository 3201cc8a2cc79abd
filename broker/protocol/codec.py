"""Frames in, messages out, and back: the codec's public entry points.

A request frame is what follows the 4-byte size prefix; encoders return whole frames,
size prefix included. Nothing but ``ProtocolError`` leaves these functions.

Bytes after a complete request body are ignored, as Kafka's broker does (it parses the
body from the frame and never checks that the buffer was consumed); their count is kept
in ``Request.trailing_bytes`` so that the server can log it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, TypeVar

from construct import Container

from broker.protocol import catalog
from broker.protocol.exceptions import (
    MalformedMessageError,
    ProtocolError,
    UnknownApiError,
    UnsupportedVersionError,
)
from broker.protocol.field_check import unknown_fields
from broker.protocol.headers import request_header_version, response_header_version

_PREFIX = struct.Struct(">hhi")
_INT32 = struct.Struct(">i")

T = TypeVar("T")


@dataclass(slots=True)
class Request:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Container
    header_version: int = 1
    # Unknown tagged fields of a v2 request header, as (tag, raw bytes).
    header_tags: list[tuple[int, bytes]] = field(default_factory=list)
    trailing_bytes: int = 0


def _as_bytes(frame: bytes | bytearray | memoryview) -> bytes:
    # Record batches are returned as views of the frame: copy a mutable buffer once so
    # that a caller reusing its read buffer cannot change a request after decoding.
    if type(frame) is bytes:
        return frame
    if isinstance(frame, (bytearray, memoryview)):
        return bytes(frame)
    raise MalformedMessageError(f"expected bytes, got {type(frame).__name__}")


def _guard(fn: Callable[[], T], what: str, **where: int | None) -> T:
    try:
        return fn()
    except ProtocolError as err:
        for key, value in where.items():
            if getattr(err, key, None) is None:
                setattr(err, key, value)
        raise
    except Exception as err:
        raise MalformedMessageError(f"{what}: {type(err).__name__}: {err}", **where) from None


def decode_request(frame: bytes | bytearray | memoryview) -> Request:
    """Decode one request frame (the bytes after the size prefix)."""
    data = _as_bytes(frame)
    if len(data) < _PREFIX.size:
        kwargs: dict[str, int] = {}
        if len(data) >= 2:
            kwargs["api_key"] = int.from_bytes(data[:2], "big", signed=True)
        if len(data) >= 4:
            kwargs["api_version"] = int.from_bytes(data[2:4], "big", signed=True)
        raise MalformedMessageError(
            f"request of {len(data)} bytes has no complete header", **kwargs
        )
    api_key, api_version, correlation_id = _PREFIX.unpack_from(data)
    where = {"api_key": api_key, "api_version": api_version, "correlation_id": correlation_id}
    try:
        catalog.check_version(api_key, api_version)
    except (UnknownApiError, UnsupportedVersionError) as err:
        err.correlation_id = correlation_id
        raise

    def run() -> Request:
        header_version = request_header_version(api_key, api_version)
        header_schema = catalog.schema("RequestHeader", header_version)
        body_schema = catalog.request_schema(api_key, api_version)
        stream = BytesIO(data)
        ctx = {"_buf": memoryview(data)}
        header = header_schema.parsefunc(stream, ctx)
        body = body_schema.parsefunc(stream, ctx)
        return Request(
            api_key=api_key,
            api_version=api_version,
            correlation_id=correlation_id,
            client_id=header["client_id"] if header_version >= 1 else None,
            body=body,
            header_version=header_version,
            header_tags=header.get("_unknown_tags", []),
            trailing_bytes=len(data) - stream.tell(),
        )

    return _guard(run, "malformed request", **where)


def _finish(stream: BytesIO) -> bytes:
    size = stream.tell() - 4
    stream.seek(0)
    stream.write(_INT32.pack(size))
    return stream.getvalue()


def _check_strict(name: str, version: int, value: Mapping[str, Any]) -> None:
    unknown = unknown_fields(name, version, value)
    if unknown:
        raise ProtocolError(f"{name} v{version} has no field(s) {', '.join(unknown)}")


def encode_response(request: Request, body: Mapping[str, Any], *, strict: bool = False) -> bytes:
    """Encode the response to ``request``; size prefix included.

    ``body`` is any mapping with the spec's snake_case field names (nested dicts and
    lists are fine); missing fields take their defaults. Keys the spec does not know
    are ignored, unless ``strict`` (then they raise ``ProtocolError``).
    """
    return _encode_response(
        request.api_key, request.api_version, request.correlation_id, body, strict=strict
    )


def _encode_response(
    api_key: int,
    api_version: int,
    correlation_id: int,
    body: Mapping[str, Any],
    *,
    strict: bool = False,
) -> bytes:
    where = {"api_key": api_key, "api_version": api_version, "correlation_id": correlation_id}

    def run() -> bytes:
        body_schema = catalog.response_schema(api_key, api_version)
        if strict:
            _check_strict(catalog.API_KEYS[api_key] + "Response", api_version, body)
        stream = BytesIO()
        stream.write(b"\x00\x00\x00\x00")
        stream.write(_INT32.pack(correlation_id))
        if response_header_version(api_key, api_version) == 1:
            stream.write(b"\x00")
        body_schema.buildfunc(body, stream, {})
        return _finish(stream)

    return _guard(run, "cannot encode response", **where)


def encode_request(
    api_key: int,
    api_version: int,
    correlation_id: int,
    client_id: str | None,
    body: Mapping[str, Any],
    *,
    strict: bool = False,
) -> bytes:
    """Encode a request frame, size prefix included (the broker's own client side)."""
    where = {"api_key": api_key, "api_version": api_version, "correlation_id": correlation_id}

    def run() -> bytes:
        body_schema = catalog.request_schema(api_key, api_version)
        if strict:
            _check_strict(catalog.API_KEYS[api_key] + "Request", api_version, body)
        header_schema = catalog.schema(
            "RequestHeader", request_header_version(api_key, api_version)
        )
        header = {
            "request_api_key": api_key,
            "request_api_version": api_version,
            "correlation_id": correlation_id,
            "client_id": client_id,
        }
        stream = BytesIO()
        stream.write(b"\x00\x00\x00\x00")
        header_schema.buildfunc(header, stream, {})
        body_schema.buildfunc(body, stream, {})
        return _finish(stream)

    return _guard(run, "cannot encode request", **where)


def decode_response(
    api_key: int, api_version: int, frame: bytes | bytearray | memoryview
) -> tuple[int, Container]:
    """Decode a response frame (after the size prefix) into (correlation id, body)."""
    data = _as_bytes(frame)
    where: dict[str, int | None] = {"api_key": api_key, "api_version": api_version}
    if len(data) >= 4:
        where["correlation_id"] = _INT32.unpack_from(data)[0]

    def run() -> tuple[int, Container]:
        body_schema = catalog.response_schema(api_key, api_version)
        header_schema = catalog.schema(
            "ResponseHeader", response_header_version(api_key, api_version)
        )
        stream = BytesIO(data)
        ctx = {"_buf": memoryview(data)}
        header = header_schema.parsefunc(stream, ctx)
        return header["correlation_id"], body_schema.parsefunc(stream, ctx)

    return _guard(run, "malformed response", **where)


def encode_data(
    name: str, version: int, value: Mapping[str, Any], *, strict: bool = False
) -> bytes:
    """Encode a standalone schema (e.g. ConsumerProtocolAssignment) without any prefix."""

    def run() -> bytes:
        if strict:
            _check_strict(name, version, value)
        stream = BytesIO()
        catalog.schema(name, version).buildfunc(value, stream, {})
        return stream.getvalue()

    return _guard(run, f"cannot encode {name} v{version}", api_version=version)


def decode_data(name: str, version: int, buf: bytes | bytearray | memoryview) -> Container:
    """Decode a standalone schema from ``buf`` (trailing bytes are ignored)."""
    data = _as_bytes(buf)

    def run() -> Container:
        stream = BytesIO(data)
        return catalog.schema(name, version).parsefunc(stream, {"_buf": memoryview(data)})

    return _guard(run, f"malformed {name} v{version}", api_version=version)
