"""Re-replication: when a node is removed (or dead past dead.broker.replacement.ms),
the sealed segments it held are copied to other nodes, and the copies alone serve
every record after the other original holders are killed; its place as a follower of
an active segment goes to another node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from broker.protocol.records import decode_records, iter_batches
from compat_tests.cluster import Cluster
from compat_tests.harness import REPO_ROOT
from compat_tests.raw_client import RawClient
from compat_tests.test_replication import _create, _metadata, _produce_all, _wait

pytestmark = [pytest.mark.compat, pytest.mark.fault, pytest.mark.slow]

SEGMENT_ENTRIES = 20
RECORDS = 200


def _cli(c: Cluster, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "broker.cli", "cluster", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


def _status(c: Cluster, via: int) -> dict[str, Any]:
    done = _cli(c, "status", "--via", f"127.0.0.1:{c.raft_ports[via]}", "--json", timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _settled(c: Cluster, via: int) -> bool:
    """Three members and nothing under-replicated; a status request that fails while
    the group settles counts as not yet."""
    done = _cli(c, "status", "--via", f"127.0.0.1:{c.raft_ports[via]}", "--json", timeout=30)
    if done.returncode != 0:
        return False
    s = json.loads(done.stdout)
    return len(s["members"]) == 3 and s["under_replicated"] == []


def _sealed_held(c: Cluster, node: int, topic: str) -> set[tuple[int, int, int]]:
    """(epoch, base, end) of the non-empty sealed segments in the node's own log."""
    path = c.nodes[node].data_dir / "logs" / f"{topic}-0" / "segments.json"
    if not path.exists():
        return set()
    segments = json.loads(path.read_text())["segments"]
    return {(s["epoch"], s["base_offset"], s["end_offset"]) for s in segments
            if s["end_offset"] is not None and s["end_offset"] > s["base_offset"]}


def _read_from(bootstrap: str, topic: str, upto: int) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    offset = 0
    deadline = time.monotonic() + 30
    with RawClient(bootstrap) as raw:
        while offset < upto and time.monotonic() < deadline:
            p = raw.request("Fetch", 11, {
                "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": topic, "partitions": [
                    {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}],
            }).responses[0].partitions[0]
            assert p.error_code == 0, p
            data = memoryview(p.records or b"")
            for position, _ in iter_batches(data, validate=True, allow_partial_tail=True):
                header, records = decode_records(data, position)
                for record in records:
                    at = header.base_offset + record.offset_delta
                    if at >= offset:
                        got.append((at, bytes(record.value or b"")))
                        offset = at + 1
            if not data:
                time.sleep(0.2)
    return got


def _sealed_segments_on_four_nodes(c: Cluster, topic: str) -> list[bytes]:
    _wait(lambda: len(_metadata(c, 1, []).brokers) == 4, "all brokers registered")
    _create(c, topic, 1, 3, 2, segment_entries=str(SEGMENT_ENTRIES))
    _wait(lambda: len(_metadata(c, 1, [topic]).topics[0].partitions[0].isr_nodes) == 3,
          "in sync")
    values = [f"v{i:04d}".encode() for i in range(RECORDS)]
    for start in range(0, RECORDS, SEGMENT_ENTRIES):
        # One segment's worth at a time, each sealed before the next: several sealed
        # segments, led (and so held) by different nodes.
        epoch = _metadata(c, 1, [topic]).topics[0].partitions[0].leader_epoch
        chunk = values[start:start + SEGMENT_ENTRIES]
        assert sorted(_produce_all(c.nodes[1].bootstrap, topic, chunk)) == sorted(chunk)
        _wait(lambda e=epoch: _metadata(c, 1, [topic]).topics[0].partitions[0].leader_epoch > e,
              "the segment to roll")
    return values


def test_a_removed_nodes_sealed_segments_are_copied_and_serve_alone(tmp_path: Path) -> None:
    topic = "resync"
    with Cluster(tmp_path, 4) as c:
        values = _sealed_segments_on_four_nodes(c, topic)

        held_before = {n: _sealed_held(c, n, topic) for n in c.nodes}
        leader = _metadata(c, 1, [topic]).topics[0].partitions[0].leader_id
        # A follower of the active segment that holds sealed segments goes.
        gone = max((n for n in c.nodes if n != leader), key=lambda n: len(held_before[n]))
        assert held_before[gone], held_before
        via = next(n for n in c.nodes if n != gone)
        removed = _cli(c, "remove-node", "--via", f"127.0.0.1:{c.raft_ports[via]}", str(gone))
        assert removed.returncode == 0, removed.stderr
        c.nodes[gone].kill()

        _wait(lambda: _settled(c, via), "no under-replicated sealed segment", timeout=60)
        text = _cli(c, "status", "--via", f"127.0.0.1:{c.raft_ports[via]}", timeout=30)
        assert "under-replicated sealed segments: 0" in text.stdout, text.stdout

        rest = [n for n in c.nodes if n != gone]
        held_after = {n: _sealed_held(c, n, topic) for n in rest}
        # What the removed node held is now on every remaining node (factor 3, three
        # nodes), some of it through copies.
        gained = {n: (held_after[n] - held_before[n]) & held_before[gone] for n in rest}
        assert any(gained.values()), (held_before, held_after)
        for n in rest:
            assert held_before[gone] <= held_after[n], (n, held_before[gone], held_after[n])
        reader = max(rest, key=lambda n: len(gained[n]))
        assert any("copied sealed segment of epoch" in line for line in
                   c.nodes[reader].log_path.read_text(errors="replace").splitlines())
        sealed_end = max(end for held in held_before.values() for _, _, end in held)
        # The earliest offset still counts the segments the removed node led.
        now_leader = _metadata(c, via, [topic]).topics[0].partitions[0].leader_id
        with RawClient(c.nodes[now_leader].bootstrap) as raw:
            earliest = raw.request("ListOffsets", 7, {
                "replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
                    {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -2}]}],
            }).topics[0].partitions[0]
        assert (earliest.error_code, earliest.offset) == (0, 0), earliest

        for n in rest:
            if n != reader:
                c.nodes[n].kill()
        got = _read_from(c.nodes[reader].bootstrap, topic, sealed_end)
        assert [o for o, _ in got] == list(range(sealed_end))
        assert [v for _, v in got] == values[:sealed_end]
        assert sealed_end >= RECORDS - 2 * SEGMENT_ENTRIES


def test_a_copy_target_that_was_down_copies_after_its_restart(tmp_path: Path) -> None:
    topic = "resync-restart"
    with Cluster(tmp_path, 4) as c:
        values = _sealed_segments_on_four_nodes(c, topic)
        held_before = {n: _sealed_held(c, n, topic) for n in c.nodes}
        leader = _metadata(c, 1, [topic]).topics[0].partitions[0].leader_id
        gone = max((n for n in c.nodes if n != leader), key=lambda n: len(held_before[n]))
        # With four nodes and factor 3, a segment the removed node held together with two
        # others can only be copied to the fourth: freeze that node so it is chosen
        # (still alive by its heartbeats) but cannot copy, then crash and restart it.
        target = next(n for n in c.nodes if n != gone
                      and held_before[gone] - held_before[n])
        via = next(n for n in c.nodes if n not in (gone, target))
        frozen = c.nodes[target].process
        assert frozen is not None
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            removed = _cli(c, "remove-node", "--via", f"127.0.0.1:{c.raft_ports[via]}", str(gone))
            assert removed.returncode == 0, removed.stderr
            status = _status(c, via)
            waiting = [g for g in status["under_replicated"] if target in g["copying"]]
            assert waiting, status
            text = _cli(c, "status", "--via", f"127.0.0.1:{c.raft_ports[via]}", timeout=30)
            assert f"copying to {target}" in text.stdout, text.stdout
        finally:
            os.kill(frozen.pid, signal.SIGKILL)
            frozen.wait()
        c.nodes[gone].kill()
        c.nodes[target].restart()

        _wait(lambda: _settled(c, via), "no under-replicated sealed segment", timeout=60)
        assert held_before[gone] <= _sealed_held(c, target, topic)
        assert not list((c.nodes[target].data_dir / "segment-copies").iterdir())
        sealed_end = max(end for held in held_before.values() for _, _, end in held)
        for n in c.nodes:
            if n not in (gone, target):
                c.nodes[n].kill()
        got = _read_from(c.nodes[target].bootstrap, topic, sealed_end)
        assert [v for _, v in got] == values[:sealed_end]


def test_a_node_dead_past_the_replacement_delay_has_its_sealed_segments_copied(tmp_path: Path) -> None:
    """No removal: the node simply stays dead longer than dead.broker.replacement.ms
    (set through AlterConfigs, as an operator would), and its sealed segments are
    copied to the other nodes, which then serve them alone."""
    topic = "resync-dead"
    with Cluster(tmp_path, 4, env={"WALRUS_BROKER_SESSION_TIMEOUT_MS": "2000"}) as c:
        values = _sealed_segments_on_four_nodes(c, topic)
        with RawClient(c.nodes[1].bootstrap) as raw:
            altered = raw.request("AlterConfigs", 1, {"validate_only": False, "resources": [{
                "resource_type": 4, "resource_name": "",
                "configs": [{"name": "dead.broker.replacement.ms", "value": "4000"}]}]})
        assert altered.responses[0].error_code == 0, altered
        held_before = {n: _sealed_held(c, n, topic) for n in c.nodes}
        leader = _metadata(c, 1, [topic]).topics[0].partitions[0].leader_id
        dead = max((n for n in c.nodes if n != leader), key=lambda n: len(held_before[n]))
        assert held_before[dead], held_before
        c.nodes[dead].kill()
        killed = time.monotonic()
        rest = [n for n in c.nodes if n != dead]
        via = rest[0]

        def copied() -> bool:
            return all(held_before[dead] <= _sealed_held(c, n, topic) for n in rest)

        _wait(copied, "the dead node's sealed segments on every other node", timeout=60)
        took = time.monotonic() - killed
        print(f"sealed segments of node {dead} copied {took:.1f}s after it died")
        assert took >= 4.0, "copied before the replacement delay had passed"
        status = _status(c, via)
        assert status["under_replicated"] == [], status["under_replicated"]
        assert dead in [b["node_id"] for b in status["brokers"]], "the dead node is still registered"
        # The copies alone serve every sealed record.
        sealed_end = max(end for held in held_before.values() for _, _, end in held)
        reader = rest[-1]
        for n in rest:
            if n != reader:
                c.nodes[n].kill()
        got = _read_from(c.nodes[reader].bootstrap, topic, sealed_end)
        assert [v for _, v in got] == values[:sealed_end]


def test_a_follower_dead_past_the_replacement_delay_hands_on_its_place_in_the_active_segment(
        tmp_path: Path) -> None:
    """The active segment is not left a replica short until it rolls: a live node that
    is no replica of it takes the dead follower's place, copies the segment from its
    base and joins the in-sync set, while the partition takes writes throughout."""
    topic = "resync-active"
    with Cluster(tmp_path, 4, env={"WALRUS_BROKER_SESSION_TIMEOUT_MS": "2000"}) as c:
        _wait(lambda: len(_metadata(c, 1, []).brokers) == 4, "all brokers registered")
        with RawClient(c.nodes[1].bootstrap) as raw:
            altered = raw.request("AlterConfigs", 1, {"validate_only": False, "resources": [{
                "resource_type": 4, "resource_name": "",
                "configs": [{"name": "dead.broker.replacement.ms", "value": "4000"}]}]})
        assert altered.responses[0].error_code == 0, altered
        _create(c, topic, 1, 3, 2)
        _wait(lambda: len(_metadata(c, 1, [topic]).topics[0].partitions[0].isr_nodes) == 3, "in sync")
        part = _metadata(c, 1, [topic]).topics[0].partitions[0]
        before = [f"before-{i}".encode() for i in range(50)]
        assert sorted(_produce_all(c.nodes[1].bootstrap, topic, before)) == sorted(before)
        dead = next(n for n in part.replica_nodes if n != part.leader_id)
        spare = ({1, 2, 3, 4} - set(part.replica_nodes)).pop()
        via = next(n for n in c.nodes if n != dead)
        c.nodes[dead].kill()
        killed = time.monotonic()

        def handed_on() -> bool:
            now = _metadata(c, via, [topic]).topics[0].partitions[0]
            return (now.leader_epoch == part.leader_epoch and dead not in now.replica_nodes
                    and spare in now.replica_nodes and sorted(now.isr_nodes) == sorted(now.replica_nodes))

        _wait(handed_on, "the dead follower's place taken and caught up", timeout=60)
        took = time.monotonic() - killed
        print(f"node {spare} took node {dead}'s place in epoch {part.leader_epoch} {took:.1f}s after it died")
        assert took >= 4.0, "replaced before the replacement delay had passed"
        after = [f"after-{i}".encode() for i in range(50)]
        assert sorted(_produce_all(c.nodes[via].bootstrap, topic, after)) == sorted(after)
        # Caught up means the newcomer fetched the segment from its base (in sync
        # above); every record, before and after the death, reads back in order.
        got = _read_from(c.nodes[spare].bootstrap, topic, 100)
        assert [v for _, v in got] == before + after
