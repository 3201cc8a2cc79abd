"""Is the broker still answering others while one client asks something heavy?

`ResponsivenessProbe` asks a broker process for ApiVersions from its own connection,
over and over, while a test's heavy request runs on another, and keeps the slowest
answer and the broker's largest resident memory (VmRSS from /proc) seen meanwhile.
ApiVersions is the cheapest request there is: if it waits, the event loop was held.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

from compat_tests.harness import BrokerProcess
from compat_tests.raw_client import RawClient

API_VERSIONS_BODY = {"client_software_name": "probe", "client_software_version": "1"}


def rss_bytes(pid: int) -> int:
    """The process's resident set size, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def broker_pid(broker: BrokerProcess) -> int:
    assert broker.process is not None
    return broker.process.pid


class ResponsivenessProbe:
    def __init__(self, broker: BrokerProcess, *, interval_s: float = 0.05,
                 answer_timeout_s: float = 30.0) -> None:
        self._broker = broker
        self._pid = broker_pid(broker)
        self._interval = interval_s
        self._timeout = answer_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="responsiveness-probe", daemon=True)
        # Memory is sampled on its own thread: the asking one waits while the loop is held.
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self.baseline_rss = 0
        self.peak_rss = 0
        self.worst_latency_s = 0.0
        self.answers = 0
        self.failures: list[str] = []

    def __enter__(self) -> ResponsivenessProbe:
        self.baseline_rss = self.peak_rss = rss_bytes(self._pid)
        # One answer before the heavy request starts, so the connection is warm.
        with RawClient(self._broker.bootstrap, self._timeout) as client:
            client.request("ApiVersions", 3, API_VERSIONS_BODY)
        self._thread.start()
        self._sampler.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(self._timeout + 5)
        self._sampler.join(5)

    @property
    def rss_growth(self) -> int:
        return self.peak_rss - self.baseline_rss

    def summary(self) -> str:
        return (f"{self.answers} ApiVersions answers, slowest {self.worst_latency_s:.3f}s; "
                f"broker RSS {self.baseline_rss >> 20} MiB -> peak {self.peak_rss >> 20} MiB"
                + (f"; failures: {self.failures}" if self.failures else ""))

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, rss_bytes(self._pid))
            except (OSError, RuntimeError):
                return  # the process is gone; the test will say so
            self._stop.wait(0.02)

    def _run(self) -> None:
        client: RawClient | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if client is None:
                    client = RawClient(self._broker.bootstrap, self._timeout)
                answer = client.request("ApiVersions", 3, API_VERSIONS_BODY)
                if answer.error_code != 0:
                    self.failures.append(f"ApiVersions error {answer.error_code}")
                self.answers += 1
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                if client is not None:
                    client.close()
                client = None
            self.worst_latency_s = max(self.worst_latency_s, time.monotonic() - started)
            self._stop.wait(self._interval)
        if client is not None:
            client.close()
