"""A minimal blocking Kafka client on the broker's own codec, for tests that need to
send exact bytes (duplicates, bad sequences, malformed frames)."""

from __future__ import annotations

import socket
import struct
from typing import Any

from broker.protocol import api_key_for_name, decode_response, encode_request


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0, client_id: str = "raw-client") -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout)
        self._correlation = 0
        self.client_id = client_id

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_frame(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exactly(4))[0]
        return self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def request(self, api: str, version: int, body: dict[str, Any]) -> Any:
        api_key = api_key_for_name(api)
        self._correlation += 1
        self.send_frame(encode_request(api_key, version, self._correlation, self.client_id, body))
        correlation, response = decode_response(api_key, version, self.read_frame())
        assert correlation == self._correlation
        return response
