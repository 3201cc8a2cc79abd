"""Network namespaces for partition tests: each broker in a namespace of its own, all
joined by veth pairs to a bridge in a hub namespace, so one node can be cut off from
the rest by setting its link down while every process keeps running.

Loopback cannot be partitioned selectively, hence the namespaces. Everything lives in
namespaces this module creates (named after the test process), addresses come from
10.77.0.0/24 inside them only, and `NetworkLab.close` deletes them all, killing only
processes still running inside them.

Test code reaches a namespace by running a function in a thread that has joined it
(setns(2) moves only the calling thread, and threads it starts inherit the
namespace), so a test can talk to brokers with RawClient or a real client library from
any namespace without spawning helper processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from compat_tests.harness import REPO_ROOT

SUBNET = "10.77.0"
CLIENT_ADDRESS = f"{SUBNET}.100"
KAFKA_PORT = 9092
RAFT_PORT = 9093
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if sys.platform != "linux":
        return f"network namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    return None


# Set (by .ci/run) where the partition tests must run: a machine that cannot make
# namespaces then fails them instead of skipping.
REQUIRE_ENV = "WALRUS_REQUIRE_NETNS"


def skip_or_fail_without_namespaces() -> None:
    """Skip (with the reason printed) a test that needs namespaces where none can be
    made; fail it instead where REQUIRE_ENV says they must run."""
    import pytest

    reason = unavailable_reason()
    if reason is None:
        return
    print(f"network partition test not run: {reason}")
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def enter_namespace(name: str) -> None:
    """Move the calling thread (only) into namespace `name`."""
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NamespaceThread(threading.Thread):
    """A thread that runs `target` inside a namespace; its result or exception is kept."""

    def __init__(self, namespace: str, target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
        super().__init__(name=name or f"in-{namespace}", daemon=True)
        self.namespace = namespace
        self._target_fn = target
        self._args = args
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            enter_namespace(self.namespace)
            self.result = self._target_fn(*self._args)
        except BaseException as exc:
            self.error = exc


def run_in(namespace: str, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
    """Call fn(*args) inside `namespace` and return what it returns."""
    thread = NamespaceThread(namespace, fn, *args)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{getattr(fn, '__name__', fn)} in {namespace} still running after {timeout}s")
    if thread.error is not None:
        raise thread.error
    return thread.result  # type: ignore[no-any-return]


class NetworkLab:
    """A hub namespace with a bridge, and member namespaces linked to it."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"walrus{os.getpid()}"
        self.hub = f"{self.prefix}-hub"
        self.members: dict[str, str] = {}
        self._made: list[str] = []

    def __enter__(self) -> NetworkLab:
        try:
            self._add_namespace(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_member(self, role: str, address: str) -> str:
        """A namespace for `role` with `address`/24 on eth0, bridged to the others."""
        name = f"{self.prefix}-{role}"
        self._add_namespace(name)
        # Both ends are created straight inside their namespaces: nothing appears,
        # even briefly, in the namespace the tests run in.
        _ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", self._port(role),
            "netns", self.hub)
        _ip("-n", self.hub, "link", "set", self._port(role), "master", "br0", "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        self.members[role] = name
        return name

    @staticmethod
    def _port(role: str) -> str:
        return f"v-{role}"[:15]

    def cut(self, role: str) -> None:
        """Disconnect `role` from everyone: its bridge port goes down."""
        _ip("-n", self.hub, "link", "set", self._port(role), "down")

    def heal(self, role: str) -> None:
        _ip("-n", self.hub, "link", "set", self._port(role), "up")

    def close(self) -> None:
        for name in reversed(self._made):
            self._kill_leftovers(name)
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _ip("netns", "del", name)
        self._made.clear()

    @staticmethod
    def _kill_leftovers(name: str) -> None:
        """Processes still inside a namespace this lab made were started by the test
        (a broker whose stop failed): they would keep the namespace alive."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                                  timeout=10, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


class NamespacedBroker:
    """One broker process running inside its own namespace."""

    def __init__(self, namespace: str, node_id: int, address: str, peers: dict[int, str], data_dir: Path) -> None:
        self.namespace = namespace
        self.node_id = node_id
        self.address = address
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"
        self.peers = peers
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.address}:{KAFKA_PORT}"

    def launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        peers = ",".join(f"{n}@{a}:{RAFT_PORT}" for n, a in self.peers.items() if n != self.node_id)
        with open(self.log_path, "ab") as log:
            # `ip netns exec` execs the broker in place: the Popen pid is the broker's.
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "broker.cli",
                 "--node-id", str(self.node_id), "--listen", self.bootstrap,
                 "--raft", f"{self.address}:{RAFT_PORT}", "--peers", peers,
                 "--data-dir", str(self.data_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT,
            )

    def wait_ready(self, timeout: float) -> None:
        import socket

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((self.address, KAFKA_PORT), 0.5):
                return True
            return False

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited with {self.process.returncode}:\n{self.log_tail()}")
            if run_in(self.namespace, listening):
                return
            time.sleep(0.1)
        raise RuntimeError(f"node {self.node_id} did not listen within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class NamespacedCluster:
    """Brokers 1..size, each in namespace "<prefix>-n<id>" at 10.77.0.<id>, and a
    "<prefix>-client" namespace at 10.77.0.100 for the test's clients."""

    def __init__(self, lab: NetworkLab, base_dir: Path, size: int) -> None:
        self.lab = lab
        addresses = {n: f"{SUBNET}.{n}" for n in range(1, size + 1)}
        self.nodes = {
            n: NamespacedBroker(lab.add_member(f"n{n}", a), n, a, addresses, base_dir / f"node{n}")
            for n, a in addresses.items()
        }
        self.client_namespace = lab.add_member("client", CLIENT_ADDRESS)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values())

    def start(self, timeout: float = 60.0) -> NamespacedCluster:
        for node in self.nodes.values():
            node.launch()
        for node in self.nodes.values():
            node.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def cut(self, node_id: int) -> None:
        self.lab.cut(f"n{node_id}")

    def heal(self, node_id: int) -> None:
        self.lab.heal(f"n{node_id}")

    def from_client(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        return run_in(self.client_namespace, fn, *args, timeout=timeout)
