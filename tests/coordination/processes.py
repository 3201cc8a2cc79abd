"""Start, talk to and kill metadata Raft members running as real processes."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

MEMBER_SCRIPT = Path(__file__).with_name("member.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Member:
    """One member process; request() sends a JSON line and waits for its reply."""

    def __init__(
        self, node_id: int, addr: str, peers: list[str], data_dir: Path, tuning: dict[str, Any],
        secret: str | None = None,
    ) -> None:
        self.node_id, self.addr, self.peers = node_id, addr, peers
        self.data_dir, self.tuning, self.secret = data_dir, tuning, secret
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout: float = 15.0) -> None:
        self._lines = queue.Queue()
        python = REPO_ROOT / ".venv" / "bin" / "python"
        self.proc = subprocess.Popen(
            [
                str(python if python.exists() else sys.executable),
                str(MEMBER_SCRIPT),
                "--node-id", str(self.node_id),
                "--addr", self.addr,
                "--peers", ",".join(self.peers),
                "--data-dir", str(self.data_dir),
                "--tuning", json.dumps(self.tuning),
                *(["--secret", self.secret] if self.secret else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )  # fmt: skip
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        started = self._next_line(timeout)
        assert started.get("event") == "started", started

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _next_line(self, timeout: float) -> dict[str, Any]:
        line = self._lines.get(timeout=timeout)
        if line is None:
            raise RuntimeError(
                f"member {self.node_id} exited (rc={self.proc and self.proc.poll()})"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._next_line(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "exit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.kill9()


def make_group(size: int, root: Path, tuning: dict[str, Any] | None = None,
               secret: str | None = None) -> list[Member]:
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(size)]
    return [
        Member(i + 1, addr, addrs, root / f"node{i + 1}", tuning or {}, secret)
        for i, addr in enumerate(addrs)
    ]
