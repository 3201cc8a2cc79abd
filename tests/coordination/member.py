"""A metadata Raft member in its own process, driven by JSON lines on stdin.

Used by the multi-process tests and by bench/metadata_raft_latency.py, so a test can
kill -9 a member and restart it on the same data directory.

    python tests/coordination/member.py --node-id 1 --addr 127.0.0.1:P1 \
        --peers 127.0.0.1:P1,127.0.0.1:P2 --data-dir DIR [--tuning JSON]

Requests: {"op": "wait_ready" | "status" | "snapshot" | "propose" | "bench" |
"compact" | "add_node" | "remove_node", ...}; one JSON reply line per request, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from broker.coordination import MetadataRaft, RaftError, RaftTuning
from broker.coordination.commands import command_from_dict
from broker.coordination.errors import Refusal
from broker.coordination.state import ClusterState


def encode_result(result: Any) -> dict[str, Any]:
    if isinstance(result, Refusal):
        return {"refusal": result.error.value, "message": result.message}
    body = dataclasses.asdict(result)
    encoded = json.dumps(body, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    return {"type": type(result).__name__, **json.loads(encoded)}


async def handle(raft: MetadataRaft, req: dict[str, Any]) -> dict[str, Any]:
    op = req["op"]
    if op == "wait_ready":
        await raft.wait_ready(req.get("timeout", 30.0))
        return {"ok": True}
    if op == "status":
        with raft.reading() as state:
            version = state.version
        return {
            "leader": raft.leader,
            "is_leader": raft.is_leader,
            "applied": raft.applied_index,
            "version": version,
            "members": raft.members,
        }
    if op == "snapshot":
        return {"snapshot": raft.snapshot().decode()}
    if op == "propose":
        try:
            result = await raft.propose(command_from_dict(req["cmd"]), req.get("timeout"))
        except RaftError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"result": encode_result(result)}
    if op == "bench":
        return await bench(raft, req)
    if op == "compact":
        raft.force_log_compaction()
        return {"ok": True}
    if op in ("add_node", "remove_node"):
        change = raft.add_node if op == "add_node" else raft.remove_node
        try:
            await change(req["address"])
        except RaftError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"ok": True}
    return {"error": "unknown op"}


async def bench(raft: MetadataRaft, req: dict[str, Any]) -> dict[str, Any]:
    """Sequential proposals (latency of one) or concurrent ones (throughput)."""
    cmd = command_from_dict(req["cmd"])
    count = int(req["count"])
    latencies: list[float] = []
    start = time.perf_counter()
    if req.get("concurrent"):
        await asyncio.gather(*(raft.propose(cmd) for _ in range(count)))
    else:
        for _ in range(count):
            t = time.perf_counter()
            await raft.propose(cmd)
            latencies.append(time.perf_counter() - t)
    return {"elapsed": time.perf_counter() - start, "latencies": latencies}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node-id", type=int, required=True)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tuning", default="{}")
    parser.add_argument("--secret", default=None, help="the cluster secret, as nodes use one")
    args = parser.parse_args()
    tuning = RaftTuning(**json.loads(args.tuning))
    raft = MetadataRaft(
        args.node_id, args.addr, args.peers.split(","), args.data_dir, ClusterState(), tuning,
        secret=args.secret,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"event": "started", "pid": os.getpid()}), flush=True)
    while line := await reader.readline():
        req = json.loads(line)
        if req["op"] == "exit":
            break
        reply = await handle(raft, req)
        print(json.dumps(reply), flush=True)
    raft.close()


if __name__ == "__main__":
    asyncio.run(main())
