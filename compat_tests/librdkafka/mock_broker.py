"""librdkafka's in-memory mock cluster as a stand-alone broker on 127.0.0.1.

A reference broker for the runner: it shows which target tests a broker that is not
Apache Kafka can pass, and gives the runner real PASSED and FAILED results to parse
before the Walrus broker can serve. The cluster lives inside a confluent-kafka client
in a child process and serves any client at its address until that process ends.

    python -m compat_tests.librdkafka.mock_broker   # prints HOST:PORT, serves until stdin closes
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_ADDRESS = re.compile(r"bootstrap\.servers=(127\.0\.0\.1:\d+)")


def serve() -> None:
    import confluent_kafka

    found = threading.Event()
    address: list[str] = []

    class _Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            match = _ADDRESS.search(record.getMessage())
            if match and not address:
                address.append(match.group(1))
                found.set()

    logger = logging.getLogger("mock-cluster")
    logger.addHandler(_Capture())
    logger.setLevel(logging.DEBUG)
    client = confluent_kafka.Producer({"test.mock.num.brokers": 1, "debug": "mock"}, logger=logger)
    while not found.is_set():
        client.poll(0.1)
    print(address[0], flush=True)
    # The log callback runs from poll(); keep polling so its queue never fills.
    stop = threading.Event()

    def wait_for_stdin_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    while not stop.is_set():
        client.poll(0.5)


@contextlib.contextmanager
def mock_broker(timeout: float = 30.0) -> Iterator[str]:
    """Run the mock cluster in a child process; yield its HOST:PORT."""
    proc = subprocess.Popen([sys.executable, "-m", "compat_tests.librdkafka.mock_broker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not _ADDRESS.search(f"bootstrap.servers={line}"):
            raise RuntimeError(f"mock cluster did not report its address (got {line!r})")
        yield line
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    serve()
