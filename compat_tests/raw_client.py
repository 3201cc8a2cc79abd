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


def leader_address(client: RawClient, topic: str, partition: int) -> str:
    """host:port of the node the metadata names as the partition's leader."""
    md = client.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    leader = next(p.leader_id for p in md.topics[0].partitions if p.partition_index == partition)
    broker = next(b for b in md.brokers if b.node_id == leader)
    return f"{broker.host}:{broker.port}"


class LeaderRoutingClient(RawClient):
    """A RawClient that sends each Produce to the partition's leader, as every Kafka
    client does (a node refuses an idempotent producer's batch for a partition it does
    not lead); every other request goes to the bootstrap node. Produce requests must
    name one partition."""

    def __init__(self, bootstrap: str, timeout: float = 10.0, client_id: str = "raw-client") -> None:
        super().__init__(bootstrap, timeout, client_id)
        self._timeout = timeout
        self._leaders: dict[str, RawClient] = {}

    def close(self) -> None:
        for leader in self._leaders.values():
            leader.close()
        super().close()

    def request(self, api: str, version: int, body: dict[str, Any]) -> Any:
        if api != "Produce":
            return super().request(api, version, body)
        (topic,) = body["topic_data"]
        (partition,) = topic["partition_data"]
        address = leader_address(self, topic["name"], partition["index"])
        if address not in self._leaders:
            self._leaders[address] = RawClient(address, self._timeout, self.client_id)
        return self._leaders[address].request(api, version, body)
