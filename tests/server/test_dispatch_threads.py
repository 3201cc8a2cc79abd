"""Which frames the dispatcher decodes and answers off the event loop
(broker/server/dispatch.py): a frame over 64 KiB is decoded on a worker thread, and its
answer is encoded there too only when the decode was slow (many elements). A produce
request large for its record bytes is answered from the loop: a second thread hop per
produce is CPU that replication needs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from broker.protocol import Request, decode_response, encode_request
from broker.server import dispatch
from broker.server.connection import ClientInfo
from broker.server.dispatch import Dispatcher, Route

pytestmark = pytest.mark.unit

PRODUCE, METADATA = 0, 3


def _encoded_on(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each answer is encoded: 'loop' or 'worker'. The real encoder runs."""
    seen: list[str] = []
    real = dispatch.encode_response

    def encode(request: Request, body: Any) -> bytes:
        seen.append("loop" if threading.current_thread() is threading.main_thread() else "worker")
        return real(request, body)

    monkeypatch.setattr(dispatch, "encode_response", encode)
    return seen


async def _produce_answer(_client: ClientInfo, request: Request) -> dict[str, Any]:
    return {"responses": [{"name": t.name, "partition_responses": [
        {"index": p.index, "error_code": 0, "base_offset": 0, "log_append_time_ms": -1,
         "log_start_offset": 0, "record_errors": [], "error_message": None}
        for p in t.partition_data]} for t in request.body.topic_data], "throttle_time_ms": 0}


async def _metadata_answer(_client: ClientInfo, request: Request) -> dict[str, Any]:
    return {"throttle_time_ms": 0, "brokers": [], "cluster_id": None, "controller_id": -1,
            "topics": [{"error_code": 3, "name": t.name, "is_internal": False,
                        "partitions": [], "topic_authorized_operations": -2147483648}
                       for t in request.body.topics]}


def _dispatcher() -> Dispatcher:
    return Dispatcher({PRODUCE: Route(_produce_answer, 3, 9), METADATA: Route(_metadata_answer, 1, 8)})


def test_a_produce_request_large_for_its_records_is_answered_from_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _encoded_on(monkeypatch)
    # One partition, 200 KiB of record bytes (opaque to the codec: one element).
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "t", "partition_data": [{"index": 0, "records": b"\\0" * (200 << 10)}]}]}
    frame = encode_request(PRODUCE, 9, 1, "c", body)[4:]
    assert len(frame) > dispatch.OFF_LOOP_FRAME_BYTES
    answer = asyncio.run(_dispatcher().handle_frame(ClientInfo(1, "127.0.0.1", 1), frame))
    assert answer is not None
    assert decode_response(PRODUCE, 9, answer[4:])[1].responses[0].partition_responses[0].index == 0
    assert seen == ["loop"]


def test_a_request_of_many_elements_is_answered_from_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _encoded_on(monkeypatch)
    body = {"topics": [{"name": f"t{i}"} for i in range(50_000)], "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": False, "include_topic_authorized_operations": False}
    frame = encode_request(METADATA, 8, 1, "c", body)[4:]
    answer = asyncio.run(_dispatcher().handle_frame(ClientInfo(1, "127.0.0.1", 1), frame))
    assert answer is not None
    assert len(decode_response(METADATA, 8, answer[4:])[1].topics) == 50_000
    assert seen == ["worker"]
