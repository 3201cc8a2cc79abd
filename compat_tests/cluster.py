"""A cluster of real broker processes on loopback, each with its own data directory,
client port and Raft port."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

from compat_tests.harness import BrokerProcess, free_port
from compat_tests.raw_client import RawClient


class Cluster:
    def __init__(self, base_dir: Path, size: int, *, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None,
                 node_args: dict[int, list[str]] | None = None) -> None:
        self.raft_ports = {n: free_port() for n in range(1, size + 1)}
        self.nodes: dict[int, BrokerProcess] = {}
        env = dict(env or {})
        if not env.get("WALRUS_CLUSTER_SECRET_FILE", os.environ.get("WALRUS_CLUSTER_SECRET_FILE")):
            # Members prove themselves to each other with a shared secret; the tests
            # provide one (conftest.py), a benchmark run on its own gets this one.
            secret = base_dir / "cluster_secret"
            base_dir.mkdir(parents=True, exist_ok=True)
            secret.write_text(secrets.token_hex(32) + "\n")
            secret.chmod(0o600)
            env["WALRUS_CLUSTER_SECRET_FILE"] = str(secret)
        for n, port in self.raft_ports.items():
            peers = ",".join(f"{o}@127.0.0.1:{p}" for o, p in self.raft_ports.items() if o != n)
            self.nodes[n] = BrokerProcess(
                base_dir / f"node{n}",
                env=env,
                extra_args=["--node-id", str(n), "--raft", f"127.0.0.1:{port}",
                            "--peers", peers, *(extra_args or []), *(node_args or {}).get(n, [])],
            )

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values())

    def start(self) -> Cluster:
        # A node waits for a Raft majority before it listens, so they start together.
        errors: list[BaseException] = []

        def start(node: BrokerProcess) -> None:
            try:
                node.start(timeout=60)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(node,)) for node in self.nodes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            try:
                node.stop()
            except RuntimeError:
                node.kill()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_brokers(self, count: int, timeout: float = 30.0) -> None:
        """Wait until every running node's metadata lists `count` live brokers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = []
            for node in self.nodes.values():
                if node.process is None or node.process.poll() is not None:
                    continue
                with RawClient(node.bootstrap) as raw:
                    seen.append(len(raw.request("Metadata", 12, {"topics": []}).brokers))
            if seen and all(n == count for n in seen):
                return
            time.sleep(0.2)
        raise AssertionError(f"the nodes did not all see {count} live brokers within {timeout}s")

    def controller_id(self, via: int | None = None) -> int:
        """The node whose Raft member leads the metadata, as Metadata's controller_id
        reports it (-1 while there is none)."""
        node = self.nodes[via] if via is not None else next(
            n for n in self.nodes.values() if n.process is not None and n.process.poll() is None)
        with RawClient(node.bootstrap) as raw:
            return int(raw.request("Metadata", 12, {"topics": []}).controller_id)
