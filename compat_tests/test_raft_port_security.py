"""The Raft port answers only the cluster's members: a stranger's pickle runs nothing,
admin requests need the cluster secret, and the port listens only where --raft says."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from compat_tests.harness import REPO_ROOT, BrokerProcess, free_port
from compat_tests.raw_client import RawClient

pytestmark = pytest.mark.compat


class _CreatesAFile:
    """Unpickling this opens (so creates) a file: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def _send_to_raft_port(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(struct.pack("i", len(payload)) + payload)
        s.settimeout(1.0)
        with contextlib.suppress(TimeoutError, OSError):
            s.recv(100)  # the member drops a connection it cannot read


def _admin(*args: str, secret_file: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WALRUS_CLUSTER_SECRET_FILE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if secret_file is not None:
        env["WALRUS_CLUSTER_SECRET_FILE"] = secret_file
    return subprocess.run([sys.executable, "-m", "broker.cli", "cluster", *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT)


def _listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_addr)[::-1])
            else:
                raw = bytes.fromhex(hex_addr)
                address = socket.inet_ntop(
                    socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.add((address, int(hex_port, 16)))
    return found


def test_a_strangers_pickle_on_the_raft_port_runs_nothing(tmp_path: Path) -> None:
    raft_port = free_port()
    marker = tmp_path / "pwned"
    broker = BrokerProcess(tmp_path / "data",
                           extra_args=["--raft", f"127.0.0.1:{raft_port}"]).start()
    try:
        evil = zlib.compress(pickle.dumps(_CreatesAFile(marker), protocol=2))
        _send_to_raft_port(raft_port, evil)
        # As a message encrypted with a key that is not the cluster's, too.
        from cryptography.fernet import Fernet

        _send_to_raft_port(raft_port, Fernet(Fernet.generate_key()).encrypt(evil))
        time.sleep(0.5)
        assert not marker.exists(), "the broker unpickled a stranger's message"
        with RawClient(broker.bootstrap) as raw:
            assert raw.request("ApiVersions", 3, {"client_software_name": "t",
                                                  "client_software_version": "1"}).error_code == 0
        assert broker.process is not None and broker.process.poll() is None
    finally:
        broker.stop()


def test_a_member_with_the_secret_still_loads_plain_data_only() -> None:
    from broker.coordination import raft  # installs the wire unpickler

    loads = raft._WirePickle.loads
    message = {"type": "append_entries", "entries": [(b"\x00cmd", 5, 2)], "term": 2}
    assert loads(pickle.dumps(message, protocol=2)) == message
    with pytest.raises(pickle.UnpicklingError, match="is not plain data"):
        loads(pickle.dumps(_CreatesAFile(Path("/nonexistent/x")), protocol=2))


def test_listens_only_on_the_addresses_it_is_given(tmp_path: Path) -> None:
    raft_port = free_port()
    broker = BrokerProcess(tmp_path / "data",
                           extra_args=["--raft", f"127.0.0.1:{raft_port}"]).start()
    alone = BrokerProcess(tmp_path / "alone").start()  # no --raft: a port of its own choice
    try:
        for process, raft_expected in ((broker, raft_port), (alone, None)):
            assert process.process is not None
            listening = _listening_addresses(process.process.pid)
            assert ("127.0.0.1", process.port) in listening, listening
            assert len(listening) == 2, listening  # Kafka and Raft, nothing else
            assert all(address == "127.0.0.1" for address, _ in listening), listening
            if raft_expected is not None:
                assert ("127.0.0.1", raft_expected) in listening
    finally:
        broker.stop()
        alone.stop()


def test_admin_requests_need_the_cluster_secret(tmp_path: Path, cluster_secret_file: Path) -> None:
    raft_port = free_port()
    via = f"127.0.0.1:{raft_port}"
    broker = BrokerProcess(tmp_path / "data", extra_args=["--raft", via]).start()
    try:
        wrong = tmp_path / "wrong"
        wrong.write_text("not-this-clusters-secret-at-all\n")
        for secret_file in (None, str(wrong)):
            for command in (["status", "--via", via, "--timeout", "3"],
                            ["add-node", "--via", via, "--timeout", "3", "9@127.0.0.1:1"]):
                done = _admin(*command, secret_file=secret_file)
                assert done.returncode == 1, done.stdout
                assert "secret" in done.stderr, done.stderr
        done = _admin("status", "--via", via, "--json", secret_file=str(cluster_secret_file))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["members"] == [via]
    finally:
        broker.stop()


def test_a_node_alone_makes_its_own_secret_readable_by_its_user_only(tmp_path: Path) -> None:
    raft_port = free_port()
    via = f"127.0.0.1:{raft_port}"
    data = tmp_path / "data"
    broker = BrokerProcess(data, extra_args=["--raft", via],
                           env={"WALRUS_CLUSTER_SECRET_FILE": ""}).start()
    try:
        secret = data / "cluster_secret"
        assert secret.stat().st_mode & 0o777 == 0o600
        assert len(secret.read_text().strip()) >= 32
        done = _admin("status", "--via", via, "--json", secret_file=str(secret))
        assert done.returncode == 0, done.stderr
    finally:
        broker.stop()
    # The same secret after a restart: nodes given a copy of it stay members.
    before = secret.read_text()
    broker.start()
    try:
        assert secret.read_text() == before
    finally:
        broker.stop()
