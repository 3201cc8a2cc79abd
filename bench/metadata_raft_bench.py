"""Latency and throughput of one metadata proposal (what every OffsetCommit waits for).

Groups of one and three MetadataRaft members, each a real process on loopback, with the
journal fsynced before each acknowledgement (the default) and without, all with a
cluster secret (as nodes run: every Raft message authenticated and encrypted), and three
members once more without one, to show what the secret costs. Ceilings measured in the
same run:
  - apply: ClusterState.apply of the same command in this process (no Raft, no I/O);
  - fsync: one small write + fsync in the same data directory (the durable-ack floor);
  - rtt:   a 100-byte ping-pong with a Python echo process over loopback TCP (the floor
           of any proposal that crosses a process boundary).

    .venv/bin/python bench/metadata_raft_bench.py [--quick]

Then: pysyncobj's own batching (entries wait for the next heartbeat) for comparison, how
soon a group of one is ready after its process starts, and failover (kill -9 of the
leader to the first commit through a survivor), three trials each.

The last line is `RESULT metadata_raft one_p50_ms=.. three_p50_ms=.. three_ops_s=..
secret_ops_ratio=..` (three members' throughput with the secret over without).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.coordination.commands import (
    BrokerHeartbeat,
    CommitOffsets,
    CreateTopic,
    OffsetEntry,
    RegisterBroker,
    command_to_dict,
)
from broker.coordination.state import ClusterState
from tests.coordination.processes import Member, make_group

COMMIT = CommitOffsets("bench", [OffsetEntry("t", 0, 42, 0, "")])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def ceiling_apply(count: int) -> float:
    state = ClusterState()
    state.apply(RegisterBroker(1, "h", 1), 1)
    state.apply(CreateTopic("t", bytes(range(1, 17)), 1, 1), 1)
    encoded = command_to_dict(COMMIT)
    start = time.perf_counter()
    for i in range(count):
        state.apply(dict(encoded), i)
    return count / (time.perf_counter() - start)


def ceiling_fsync(directory: Path, count: int) -> float:
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    times = []
    try:
        for _ in range(count):
            t = time.perf_counter()
            os.write(fd, b"x" * 128)
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1e3


def ceiling_rtt(count: int) -> float:
    """Median round trip of a 100-byte message to an echo process over loopback TCP."""
    echo = (
        "import socket, sys\n"
        "srv = socket.create_server(('127.0.0.1', 0))\n"
        "print(srv.getsockname()[1], flush=True)\n"
        "conn, _ = srv.accept()\n"
        "conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
        "while data := conn.recv(4096):\n"
        "    conn.sendall(data)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", echo], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    times = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            t = time.perf_counter()
            sock.sendall(b"x" * 100)
            got = 0
            while got < 100:
                got += len(sock.recv(4096))
            times.append(time.perf_counter() - t)
    proc.wait()
    return statistics.median(times) * 1e3


SECRET = "bench-cluster-secret-0123456789"


def leader_of(members: list[Member]) -> Member:
    return next(m for m in members if m.request({"op": "status"})["is_leader"])


def start_group(members: list[Member]) -> Member:
    """Start every member, wait until each is ready; the leader."""
    for m in members:
        m.start()
    for m in members:
        m.request({"op": "wait_ready"})
    return leader_of(members)


def run_group(
    size: int, root: Path, tuning: dict[str, Any], sequential: int, burst: int,
    secret: str | None = SECRET,
) -> dict[str, float]:
    members = make_group(size, root, tuning, secret)
    try:
        leader = start_group(members)
        setup = [RegisterBroker(1, "127.0.0.1", 9092), CreateTopic("t", bytes(range(1, 17)), 1, 1)]
        for cmd in setup:
            leader.request({"op": "propose", "cmd": command_to_dict(cmd)})
        out: dict[str, float] = {}
        targets: list[tuple[str, Member]] = [("leader", leader)]
        if size > 1:
            targets.append(("follower", next(m for m in members if m is not leader)))
        for role, member in targets:
            cmd = command_to_dict(COMMIT)
            seq = member.request({"op": "bench", "cmd": cmd, "count": sequential}, 120)
            out[f"{role}_p50"] = pct(seq["latencies"], 0.5)
            out[f"{role}_p99"] = pct(seq["latencies"], 0.99)
            conc = member.request(
                {"op": "bench", "cmd": cmd, "count": burst, "concurrent": True}, 120
            )
            out[f"{role}_ops"] = burst / conc["elapsed"]
        return out
    finally:
        for m in members:
            m.stop()


def ready_after_start(root: Path, trials: int) -> list[float]:
    """Seconds from a one-member group's process being up (its Raft object made) to
    wait_ready: the election and journal replay a one-node broker waits for."""
    times = []
    for i in range(trials):
        (member,) = make_group(1, root / f"ready{i}", {}, SECRET)
        try:
            member.start()
            begun = time.perf_counter()
            member.request({"op": "wait_ready"})
            times.append(time.perf_counter() - begun)
        finally:
            member.stop()
    return times


def failover(root: Path, trials: int) -> list[float]:
    """Seconds from kill -9 of a three-member group's leader to the first commit of a
    proposal made through a survivor right after it (the proposal first reaches the dead
    leader; propose() retries it on the new one)."""
    members = make_group(3, root / "failover", {}, SECRET)
    heartbeat = command_to_dict(BrokerHeartbeat(1))
    times = []
    try:
        leader = start_group(members)
        leader.request({"op": "propose", "cmd": command_to_dict(RegisterBroker(1, "h", 1))})
        for _ in range(trials):
            leader = leader_of(members)
            survivor = next(m for m in members if m is not leader)
            leader.kill9()
            begun = time.perf_counter()
            answer = survivor.request({"op": "propose", "cmd": heartbeat, "timeout": 30}, 60)
            assert "result" in answer, answer
            times.append(time.perf_counter() - begun)
            leader.start()
            leader.request({"op": "wait_ready"})
    finally:
        for m in members:
            m.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sequential, burst = (200, 2000) if args.quick else (1000, 10000)
    root = Path(tempfile.mkdtemp(prefix="walrus-raft-bench-"))

    apply_ops = ceiling_apply(50_000)
    fsync_ms = ceiling_fsync(root, 200)
    rtt_ms = ceiling_rtt(500)
    print(f"ceilings: apply {apply_ops:,.0f} ops/s, fsync {fsync_ms:.3f} ms, rtt {rtt_ms:.3f} ms")

    results: dict[tuple[int, bool], dict[str, float]] = {}
    for size in (1, 3):
        for fsync in (True, False):
            tuning = {"fsync_on_ack": fsync}
            r = run_group(size, root / f"g{size}-{int(fsync)}", tuning, sequential, burst)
            results[(size, fsync)] = r
            for role in ("leader", "follower"):
                if f"{role}_p50" not in r:
                    continue
                p50, p99, ops = r[f"{role}_p50"], r[f"{role}_p99"], r[f"{role}_ops"]
                print(
                    f"members={size} fsync_on_ack={fsync!s:5} via {role:8}: "
                    f"p50 {p50:.2f} ms (x{p50 / rtt_ms:.1f} rtt, x{p50 / fsync_ms:.1f} fsync) "
                    f"p99 {p99:.2f} ms, {ops:,.0f} ops/s ({ops / apply_ops:.3f} of apply)"
                )
    one, three = results[(1, True)], results[(3, True)]
    plain = run_group(3, root / "g3-plain", {"fsync_on_ack": True}, sequential, burst, None)
    ratio = three["leader_ops"] / plain["leader_ops"]
    batched = run_group(3, root / "g3-batched", {"fsync_on_ack": True, "send_immediately": False},
                        max(50, sequential // 4), burst)
    print(
        f"members=3 fsync_on_ack=True  pysyncobj batching (send_immediately off): "
        f"p50 {batched['leader_p50']:.1f} ms via leader, {batched['follower_p50']:.1f} ms via "
        f"follower, {batched['leader_ops']:,.0f} ops/s at the leader"
    )
    ready = ready_after_start(root, 3)
    print("group of one ready after start: " + ", ".join(f"{t:.2f} s" for t in ready))
    taken_over = failover(root, 3)
    print("failover, kill -9 of the leader to a commit through a survivor: "
          + ", ".join(f"{t:.2f} s" for t in taken_over))
    print(
        f"members=3 fsync_on_ack=True  no secret    : p50 {plain['leader_p50']:.2f} ms "
        f"p99 {plain['leader_p99']:.2f} ms, {plain['leader_ops']:,.0f} ops/s; with the secret "
        f"p50 x{three['leader_p50'] / plain['leader_p50']:.2f}, ops/s x{ratio:.2f}"
    )
    print(
        f"RESULT metadata_raft one_p50_ms={one['leader_p50']:.2f} "
        f"three_p50_ms={three['leader_p50']:.2f} three_ops_s={three['leader_ops']:.0f} "
        f"secret_ops_ratio={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
