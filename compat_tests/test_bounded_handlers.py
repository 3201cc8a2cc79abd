"""Every API that takes a list from the client walks it in slices of the event loop's
time: a request of 100,000 entries takes what it takes, but other clients' requests are
answered meanwhile (on main, these held ApiVersions for 1 to 13 s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient
from compat_tests.responsiveness import ResponsivenessProbe

pytestmark = pytest.mark.compat

N = 100_000
TOPIC = "bounded-lists"

REQUESTS: dict[str, tuple[int, dict[str, Any]]] = {
    "OffsetCommit": (8, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                         "group_instance_id": None, "topics": [{"name": TOPIC, "partitions": [
                             {"partition_index": i, "committed_offset": 1, "committed_leader_epoch": -1,
                              "committed_metadata": None} for i in range(N)]}]}),
    "OffsetForLeaderEpoch": (4, {"replica_id": -1, "topics": [{"topic": TOPIC, "partitions": [
        {"partition": i, "current_leader_epoch": -1, "leader_epoch": 0} for i in range(N)]}]}),
    "DeleteRecords": (2, {"timeout_ms": 1000, "topics": [{"name": TOPIC, "partitions": [
        {"partition_index": i, "offset": 0} for i in range(N)]}]}),
    "DescribeGroups": (5, {"groups": [f"g{i}" for i in range(N)], "include_authorized_operations": False}),
    "DeleteGroups": (2, {"groups_names": [f"g{i}" for i in range(N)]}),
    "OffsetFetch": (8, {"groups": [{"group_id": f"g{i}", "topics": None} for i in range(N)],
                        "require_stable": False}),
    "DescribeProducers": (0, {"topics": [{"name": TOPIC, "partition_indexes": list(range(N))}]}),
    "DeleteTopics": (6, {"timeout_ms": 1000, "topics": [
        {"name": f"absent-{i}", "topic_id": uuid.UUID(int=0)} for i in range(N)]}),
    "CreatePartitions": (3, {"timeout_ms": 1000, "validate_only": True, "topics": [
        {"name": f"absent-{i}", "count": 2, "assignments": None} for i in range(N)]}),
}


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(Path(tmp_path_factory.mktemp("lists")) / "data").start()
    try:
        with RawClient(process.bootstrap) as client:
            client.request("Metadata", 12, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": True})
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("api", sorted(REQUESTS))
def test_a_request_of_100k_entries_does_not_hold_other_clients(shared_broker: BrokerProcess, api: str) -> None:
    version, body = REQUESTS[api]
    with RawClient(shared_broker.bootstrap, 120) as client, ResponsivenessProbe(shared_broker) as probe:
        started = time.monotonic()
        client.request(api, version, body)
        elapsed = time.monotonic() - started
    print(f"{api} with {N} entries: {elapsed:.2f}s; {probe.summary()}")
    assert probe.worst_latency_s < 1.0, probe.summary()
    assert not probe.failures, probe.summary()
    assert shared_broker.process is not None and shared_broker.process.poll() is None
