"""The typed node-to-node calls (interbroker/peer_api.py) against a real in-process
node's listener, and the connections they travel on: a forward that times out for one
client connection fails no other client's."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from node_runner import NodeRunner

from broker.interbroker import client as peer_client
from broker.interbroker.client import PeerPool, PeerUnavailable
from broker.interbroker.peer_api import FetchPart, PeerApi
from broker.protocol.errors import ErrorCode
from broker.protocol.records import Record, decode_records, encode_batch, iter_batches

pytestmark = pytest.mark.unit

PEER = 2


def _api(port: int) -> tuple[PeerApi, PeerPool]:
    pool = PeerPool()
    return PeerApi(pool, lambda node: ("127.0.0.1", port) if node == PEER else None, node_id=1), pool


def _values(records: bytes | memoryview) -> list[bytes]:
    data = memoryview(records)
    out: list[bytes] = []
    for position, _ in iter_batches(data, validate=True, allow_partial_tail=True):
        _, decoded = decode_records(data, position)
        out.extend(bytes(r.value or b"") for r in decoded)
    return out


def test_each_call_reads_the_real_nodes_answer(runner: NodeRunner) -> None:
    created = runner.call("CreateTopics", 7, {"topics": [{
        "name": "peer", "num_partitions": 1, "replication_factor": 1, "assignments": [],
        "configs": []}], "timeout_ms": 5000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.NONE
    port = runner.node.config.listen[1]

    async def scenario() -> None:
        api, pool = _api(port)
        try:
            plain = encode_batch([Record(0, 0, None, b"a", []), Record(1, 0, None, b"b", [])])
            produced = await api.forward_produce(PEER, {("peer", 0): plain, ("ghost", 0): plain},
                                                 acks=1, timeout_ms=5000, timeout_s=10, client_connection=3)
            assert (produced[("peer", 0)].error, produced[("peer", 0)].base_offset) == (ErrorCode.NONE, 0)
            assert produced[("ghost", 0)].error != ErrorCode.NONE
            idempotent = encode_batch([Record(0, 0, None, b"c", [])], producer_id=77, producer_epoch=0,
                                      base_sequence=0)
            again = await api.forward_produce(PEER, {("peer", 0): idempotent}, acks=-1, timeout_ms=5000,
                                              timeout_s=10, client_connection=4)
            assert (again[("peer", 0)].error, again[("peer", 0)].base_offset) == (ErrorCode.NONE, 2)

            held = await api.read_held(PEER, [FetchPart("peer", 0, 0, 1 << 20)])
            part = held[("peer", 0)]
            assert (part.error, part.high_watermark) == (ErrorCode.NONE, 3)
            assert _values(part.records) == [b"a", b"b", b"c"]

            error, _, offset = await api.list_offset_held(PEER, "peer", 0, -1, timeout=5)
            assert (error, offset) == (ErrorCode.NONE, 3)
            producers = await api.producers_of(PEER, "peer", 0, timeout=5)
            assert [(p.producer_id, p.producer_epoch, p.last_sequence) for p in producers] == [(77, 0, 0)]

            with pytest.raises(PeerUnavailable, match="not registered"):
                await api.read_held(PEER + 1, [FetchPart("peer", 0, 0, 1 << 20)])
        finally:
            pool.close()

    asyncio.run(scenario())


class SilentPeer:
    """Accepts connections and reads requests, never answering: a stalled leader."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent_peer() -> Iterator[SilentPeer]:
    peer = SilentPeer()
    try:
        yield peer
    finally:
        peer.close()


def test_a_forward_that_times_out_fails_no_other_clients_forward(silent_peer: SilentPeer) -> None:
    async def scenario() -> None:
        api, pool = _api(silent_peer.port)
        batch = encode_batch([Record(0, 0, None, b"v", [])])
        try:
            # Client connections 1 and 9 shared a peer connection when there were 8.
            patient = asyncio.create_task(api.forward_produce(
                PEER, {("t", 0): batch}, acks=1, timeout_ms=5000, timeout_s=5, client_connection=9))
            await asyncio.sleep(0.1)
            with pytest.raises(PeerUnavailable, match="did not answer"):
                await api.forward_produce(PEER, {("t", 0): batch}, acks=1, timeout_ms=200,
                                          timeout_s=0.3, client_connection=1)
            await asyncio.sleep(0.2)
            assert not patient.done(), "another client's forward failed with it"
            patient.cancel()
            assert len(silent_peer.connections) == 2
        finally:
            pool.close()

    asyncio.run(scenario())


def test_idle_peer_connections_are_closed(silent_peer: SilentPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer_client, "IDLE_CLOSE_S", 0.2)

    async def scenario() -> None:
        pool = PeerPool()
        try:
            first = pool.connection("127.0.0.1", silent_peer.port, "produce-1")
            await first._ensure_connected()
            await asyncio.sleep(0.3)
            pool.connection("127.0.0.1", silent_peer.port, "produce-2")
            assert pool.connection("127.0.0.1", silent_peer.port, "produce-1") is not first
        finally:
            pool.close()

    asyncio.run(scenario())
