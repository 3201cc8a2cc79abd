"""Clients that send large frames and never finish them: the broker holds no more than
its request budget (queued_max_request_bytes) of them, stops reading from such
clients instead of buffering, keeps answering others, and closes a connection whose
frame is declared larger than max_request_bytes before reading it."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient
from compat_tests.responsiveness import API_VERSIONS_BODY, ResponsivenessProbe

pytestmark = [pytest.mark.compat, pytest.mark.fault]

MiB = 1 << 20
# Scaled down from 20 clients x 80 MiB (1.66 GB of RSS on main) by shrinking the
# limits through their settings, so that the test takes seconds.
MAX_REQUEST = 8 * MiB
BUDGET = 16 * MiB
CLIENTS = 20
SENT_EACH = 7 * MiB
SEND_FOR_S = 3.0


@pytest.fixture
def small_limits_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    process = BrokerProcess(tmp_path / "data", env={
        "WALRUS_MAX_REQUEST_BYTES": str(MAX_REQUEST),
        "WALRUS_QUEUED_MAX_REQUEST_BYTES": str(BUDGET),
    }).start()
    try:
        yield process
    finally:
        process.stop()


def _send_unfinished_frame(bootstrap: str, sockets: list[socket.socket], sent: list[int]) -> None:
    """Declare a frame just under max_request_bytes and send SENT_EACH bytes of it, as
    far as the broker reads them within SEND_FOR_S; the frame is never finished."""
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), 5)
    sockets.append(sock)
    sock.setblocking(False)
    payload = memoryview(struct.pack(">i", MAX_REQUEST - 1) + b"\x00" * SENT_EACH)
    deadline = time.monotonic() + SEND_FOR_S
    while payload and time.monotonic() < deadline:
        try:
            n = sock.send(payload[:256 * 1024])
        except BlockingIOError:
            time.sleep(0.01)
            continue
        except OSError:
            break
        payload = payload[n:]
        sent.append(n)


def test_unfinished_frames_are_held_within_the_budget(small_limits_broker: BrokerProcess) -> None:
    broker = small_limits_broker
    sockets: list[socket.socket] = []
    sent: list[int] = []
    try:
        with ResponsivenessProbe(broker) as probe:
            senders = [threading.Thread(target=_send_unfinished_frame,
                                        args=(broker.bootstrap, sockets, sent)) for _ in range(CLIENTS)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(SEND_FOR_S + 10)
            # The stalled clients still hold what they sent; others are served.
            with RawClient(broker.bootstrap) as other:
                started = time.monotonic()
                other.request("ApiVersions", 3, API_VERSIONS_BODY)
                meta = other.request("Metadata", 12, {"topics": None})
                late_answer_s = time.monotonic() - started
        print(f"{sum(sent) >> 20} MiB sent by {CLIENTS} stalled clients; "
              f"ApiVersions+Metadata after: {late_answer_s:.3f}s; {probe.summary()}")
        assert [b.node_id for b in meta.brokers] == [1]
        assert late_answer_s < 1.0
        assert probe.worst_latency_s < 1.0, probe.summary()
        assert not probe.failures, probe.summary()
        # The budget, one frame beyond it, small requests' headroom, and slack for
        # buffers: main held all 140 MiB.
        assert probe.rss_growth < 48 * MiB, probe.summary()
    finally:
        for sock in sockets:
            sock.close()
    # Closed connections give their reservations back: large requests are read again.
    with RawClient(broker.bootstrap) as client:
        big = client.request("Metadata", 12, {"topics": [{"name": f"t{i}"} for i in range(50_000)],
                                              "allow_auto_topic_creation": False})
        assert len(big.topics) == 50_000


def test_a_frame_declared_over_max_request_bytes_is_closed_unread(small_limits_broker: BrokerProcess) -> None:
    broker = small_limits_broker
    with RawClient(broker.bootstrap) as client:
        client.send_frame(struct.pack(">i", MAX_REQUEST + 1) + b"\x00" * 1024)
        client.sock.settimeout(5)
        with pytest.raises(ConnectionError):
            client.read_frame()
    assert f"request size {MAX_REQUEST + 1} outside 0..{MAX_REQUEST}" in broker.log_tail(200)
    with RawClient(broker.bootstrap) as client:
        assert client.request("ApiVersions", 3, API_VERSIONS_BODY).error_code == 0
