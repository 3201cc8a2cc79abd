"""Mistakes an operator makes at start get one clear line and a non-zero exit within
seconds, never a traceback: each case runs the real `python -m broker.cli`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_broker(args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 20.0) -> tuple[int, str, float]:
    inherited = {k: v for k, v in os.environ.items() if k != "WALRUS_CLUSTER_SECRET_FILE"}
    full_env = {**inherited, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=cwd, env=full_env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def assert_one_clear_line(output: str, expected: str) -> None:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "ERROR" in line or "walrus-broker:" in line]
    assert len(errors) == 1, output
    assert expected in errors[0], output


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_kafka_port_in_use(tmp_path: Path, held_port: int) -> None:
    rc, out, took = run_broker(["--listen", f"127.0.0.1:{held_port}", "--data-dir", "d"],
                               cwd=tmp_path)
    assert rc == 1 and took < 10
    assert_one_clear_line(out, f"Kafka port 127.0.0.1:{held_port} is already in use")


def test_raft_port_in_use(tmp_path: Path, held_port: int) -> None:
    rc, out, took = run_broker(["--listen", f"127.0.0.1:{free_port()}", "--raft",
                                f"127.0.0.1:{held_port}", "--data-dir", "d"], cwd=tmp_path)
    assert rc == 1 and took < 10
    assert_one_clear_line(out, f"Raft port 127.0.0.1:{held_port} is already in use")


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        ("a-file", "is a file, not a directory"),
        ("missing/parent/data", "is missing and so is its parent"),
        # Not writable even by root, so the case holds in CI as on a laptop.
        ("/proc", "is not writable"),
    ],
)
def test_unusable_data_directory(tmp_path: Path, data_dir: str, expected: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    rc, out, took = run_broker(["--listen", f"127.0.0.1:{free_port()}", "--data-dir", data_dir],
                               cwd=tmp_path)
    assert rc == 1 and took < 10
    assert_one_clear_line(out, expected)
    assert not (tmp_path / "missing").exists()


def test_a_missing_data_directory_in_an_existing_parent_is_created(tmp_path: Path) -> None:
    from broker.startup_checks import check_data_dir

    check_data_dir(tmp_path / "fresh")
    assert (tmp_path / "fresh").is_dir() and list((tmp_path / "fresh").iterdir()) == []


def test_bad_log_level(tmp_path: Path) -> None:
    rc, out, took = run_broker(["--log-level", "LOUD", "--data-dir", "d"], cwd=tmp_path)
    assert rc == 2 and took < 10
    assert_one_clear_line(out, "'LOUD' is not one of DEBUG, INFO")


def test_node_named_in_its_own_peers(tmp_path: Path) -> None:
    rc, out, _ = run_broker(["--node-id", "1", "--raft", "127.0.0.1:7001", "--peers",
                             "1@127.0.0.1:7002,2@127.0.0.1:7003"], cwd=tmp_path)
    assert rc == 2
    assert_one_clear_line(out, "node 1 is named in its own --peers")
    rc, out, _ = run_broker(["--node-id", "1", "--raft", "127.0.0.1:7001", "--peers",
                             "2@127.0.0.1:7001"], cwd=tmp_path)
    assert rc == 2
    assert_one_clear_line(out, "127.0.0.1:7001 is this node's own --raft address")


def test_a_cluster_node_needs_a_secret_file(tmp_path: Path) -> None:
    rc, out, _ = run_broker(["--node-id", "1", "--listen", f"127.0.0.1:{free_port()}",
                             "--raft", f"127.0.0.1:{free_port()}", "--peers",
                             f"2@127.0.0.1:{free_port()}", "--data-dir", "d"], cwd=tmp_path)
    assert rc == 1
    assert_one_clear_line(out, "a node with --peers needs --cluster-secret-file")
    (tmp_path / "short").write_text("tooshort\n")
    rc, out, _ = run_broker(["--node-id", "1", "--listen", f"127.0.0.1:{free_port()}",
                             "--raft", f"127.0.0.1:{free_port()}", "--peers",
                             f"2@127.0.0.1:{free_port()}", "--cluster-secret-file", "short",
                             "--data-dir", "d"], cwd=tmp_path)
    assert rc == 1
    assert_one_clear_line(out, "is shorter than 16 characters")


def test_silent_peers_are_named_while_waiting_then_a_clear_error(tmp_path: Path) -> None:
    silent = [free_port(), free_port()]
    (tmp_path / "secret").write_text("a-secret-long-enough-for-a-cluster\n")
    rc, out, took = run_broker(
        ["--node-id", "1", "--listen", f"127.0.0.1:{free_port()}",
         "--raft", f"127.0.0.1:{free_port()}", "--cluster-secret-file", "secret",
         "--peers", f"2@127.0.0.1:{silent[0]},3@127.0.0.1:{silent[1]}", "--data-dir", "d"],
        cwd=tmp_path, env={"WALRUS_METADATA_READY_TIMEOUT_MS": "6500"})
    assert rc == 1 and took < 15, out
    waiting = [line for line in out.splitlines() if "WARNING" in line and "no Raft majority" in line]
    assert waiting, out
    named = waiting[0].split("no answer from ", 1)[1].rstrip(")").split(", ")
    assert sorted(named) == sorted(f"127.0.0.1:{port}" for port in silent), waiting[0]
    assert_one_clear_line(out, "1 of 3 members reachable")


def test_unknown_walrus_variable_is_a_warning_and_the_broker_starts(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WALRUS_DATA_DRI": "typo"}
    log_path = tmp_path / "broker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "broker.cli", "--listen",
                                 f"127.0.0.1:{port}", "--data-dir", "d"], cwd=tmp_path,
                                env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"broker did not listen:\n{log_path.read_text()}")
    finally:
        proc.terminate()
        proc.wait(20)
    out = log_path.read_text()
    assert "ignoring environment variable WALRUS_DATA_DRI: it names no setting" in out
    assert proc.returncode == 0, out


def test_io_uring_demanded_where_it_cannot_work_is_one_clear_line(tmp_path: Path) -> None:
    # A binding that cannot be imported stands for any reason io_uring cannot work.
    fake = tmp_path / "fake"
    (fake / "liburing").mkdir(parents=True)
    (fake / "liburing" / "__init__.py").write_text("raise ImportError('no binding here')\n")
    rc, out, took = run_broker(["--listen", f"127.0.0.1:{free_port()}", "--data-dir", "d",
                                "--io-backend", "io_uring"], cwd=tmp_path,
                               env={"PYTHONPATH": f"{fake}{os.pathsep}{REPO_ROOT}"})
    assert rc == 1 and took < 15, out
    assert_one_clear_line(out, "io_uring")
    assert "--io-backend auto or posix" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--listeners", "SSL://127.0.0.1:{port}"],
         "listener SSL uses TLS: set ssl_certfile and ssl_keyfile"),
        (["--listeners", "CLIENT://127.0.0.1:{port}"],
         "listener CLIENT has no security protocol: add CLIENT:<PROTOCOL> to "
         "listener_security_protocol_map"),
        (["--listeners", "PLAINTEXT://0.0.0.0:{port}"],
         "listens on every interface"),
        (["--listeners", "PLAINTEXT://127.0.0.1:{port}", "--advertised-listeners",
          "OTHER://h:1"], "advertised_listeners: OTHER is not one of the listeners"),
        (["--listeners", "SASL_PLAINTEXT://127.0.0.1:{port}", "--sasl-enabled-mechanisms",
          "GSSAPI"], "sasl_enabled_mechanisms: GSSAPI not supported"),
        (["--listeners", "SASL_PLAINTEXT://127.0.0.1:{port}", "--sasl-enabled-mechanisms",
          "OAUTHBEARER"], "OAUTHBEARER needs sasl_oauthbearer_jwks_file"),
        (["--listeners", "SSL://127.0.0.1:{port}", "--ssl-certfile", "{missing}",
          "--ssl-keyfile", "{missing}"], "ssl_certfile"),
        (["--sasl-plain-credentials-file", "{loose}"],
         "holds passwords and is readable by others"),
        (["--scram-credentials-file", "{bad_users}"], "line 1: "),
    ],
    ids=["tls-without-cert", "unmapped-name", "wildcard-unadvertised", "unknown-advertised",
         "unknown-mechanism", "oauth-without-keys", "missing-cert-files", "loose-plain-file",
         "bad-scram-file"],
)
def test_security_settings_that_cannot_work(tmp_path: Path, args: list[str], expected: str) -> None:
    loose = tmp_path / "plain.txt"
    loose.write_text("alice:secret\n")
    loose.chmod(0o644)
    bad_users = tmp_path / "users.txt"
    bad_users.write_text("alice:SCRAM-SHA-1:secret\n")
    bad_users.chmod(0o600)
    values = {"port": str(free_port()), "missing": str(tmp_path / "nowhere.pem"),
              "loose": str(loose), "bad_users": str(bad_users)}
    code, output, took = run_broker(
        ["--data-dir", str(tmp_path / "data"), *(a.format(**values) for a in args)], cwd=tmp_path)
    assert code != 0
    assert took < 15
    assert_one_clear_line(output, expected)
