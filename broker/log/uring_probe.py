"""Whether io_uring can be used in this process, decided by a child process.

A native binding can kill the process that calls it, and nothing in-process can catch
that: the liburing 2026 wheels execute AVX-512 instructions and die with SIGILL on CPUs
without them. So a child (`uring_ring.py --probe`) imports liburing, sets up a ring and
does one linked write + fdatasync into a temporary file, and this process imports
liburing only once the child has done all of that and exited.

The answer is cached for the life of the process: a broker opens many logs, and the
probe costs a process start (about 0.1 s).
"""

from __future__ import annotations

import errno as errno_codes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_BINDING = "liburing==2024.5.3"
PROBE_TIMEOUT_S = 10.0
_CHILD = str(Path(__file__).with_name("uring_ring.py"))
_DISABLED_SYSCTL = "/proc/sys/kernel/io_uring_disabled"

# Errors with which the kernel refuses io_uring itself: too old (ENOSYS, also what an
# emulator such as qemu-user answers), or forbidden by kernel.io_uring_disabled or a
# seccomp filter (EPERM, EACCES; many container runtimes block io_uring).
_KERNEL_REFUSALS = {
    errno_codes.ENOSYS: "no io_uring in this kernel: too old, or an emulator such as qemu-user",
    errno_codes.EPERM: "forbidden by kernel.io_uring_disabled or a seccomp filter",
    errno_codes.EACCES: "forbidden by kernel.io_uring_disabled or a seccomp filter",
}
_STAGES = {
    "import": "being imported",
    "ring": "setting up a ring",
    "write": "doing a test write",
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """`kind`: ok, missing (binding not importable), refused (by the kernel), crashed
    (the child died of a signal), hung, or failed (anything else). `reason` is one
    sentence for logs and errors; empty when ok."""

    kind: str
    reason: str
    elapsed_ms: float
    errno: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def expected(self) -> bool:
        """A plain fact about the host (no binding, a kernel that says no), as opposed
        to a broken binding someone should look at."""
        return self.kind in ("ok", "missing", "refused")


_lock = threading.Lock()
_cached: ProbeResult | None = None


def probe_io_uring() -> ProbeResult:
    """The probe's answer for this process, run on first use."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = run_probe()
        return _cached


def run_probe(
    search_path: Sequence[str] | None = None, timeout: float = PROBE_TIMEOUT_S
) -> ProbeResult:
    """Run the probe now, uncached. The child imports from `search_path` (default: this
    process's sys.path), so it tests the very module this process would load."""
    started = time.perf_counter()

    def result(kind: str, reason: str, code: int | None = None) -> ProbeResult:
        return ProbeResult(kind, reason, (time.perf_counter() - started) * 1000, code)

    refusal = kernel_refusal()
    if refusal:
        return result("refused", refusal)
    path = sys.path if search_path is None else search_path
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
    # -P: the child's directory (broker/log) must not shadow top-level modules. -S: the
    # path passed above already holds what `site` would add, and skipping it is faster.
    command = [sys.executable, "-S", "-P", _CHILD, "--probe", tempfile.gettempdir()]
    try:
        done = subprocess.run(
            command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        return result("hung", f"io_uring probe process hung for {timeout:g} s and was killed")
    except OSError as exc:
        return result("failed", f"io_uring probe process could not start ({exc})")
    stages: dict[str, dict[str, object]] = {}
    outcome: dict[str, object] | None = None
    for line in done.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "stage" in message:
            stages[str(message["stage"])] = message
        elif isinstance(message, dict) and isinstance(message.get("result"), dict):
            outcome = message["result"]
    binding = _binding_name(stages.get("ring"))
    if done.returncode < 0:
        reached = next((s for s in reversed(_STAGES) if s in stages), "import")
        return result(
            "crashed",
            f"io_uring binding crashed ({_signal_name(-done.returncode)}) in a probe process: "
            f"{binding} killed it while {_STAGES[reached]}; the supported binding is "
            f"{SUPPORTED_BINDING}",
        )
    if outcome is None:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return result(
            "failed",
            f"io_uring probe process exited with status {done.returncode} ({tail[0]})",
        )
    return result(*_classify(outcome, binding))


def _classify(outcome: dict[str, object], binding: str) -> tuple[str, str, int | None]:
    """(kind, reason, errno) from the child's last report."""
    kind = outcome.get("kind")
    error = str(outcome.get("error", ""))
    raw_code = outcome.get("errno")
    code = raw_code if isinstance(raw_code, int) else None
    name = errno_codes.errorcode.get(code, str(code)) if code is not None else ""
    if kind == "ok":
        return "ok", "", None
    if kind == "missing":
        return (
            "missing",
            f"io_uring binding not installed or not importable ({error}); install "
            f"{SUPPORTED_BINDING} (the io_uring extra) to use io_uring",
            None,
        )
    if kind == "setup" and code in _KERNEL_REFUSALS:
        return "refused", f"io_uring refused by the kernel ({name}: {_KERNEL_REFUSALS[code]})", code
    if kind == "setup":
        return "failed", f"io_uring ring setup failed in a probe process ({name}: {error})", code
    if kind == "io":
        label = f"{name}: {error}" if name else error
        return "failed", f"io_uring test write failed in a probe process ({label})", code
    return (
        "failed",
        f"io_uring probe failed with {binding} ({error}); the supported binding is "
        f"{SUPPORTED_BINDING}",
        None,
    )


def kernel_refusal(sysctl: str = _DISABLED_SYSCTL) -> str:
    """A reason known without a probe process, or ''. kernel.io_uring_disabled=2 turns
    io_uring off for every process; 1 leaves it to privileges, which the probe tests."""
    if not sys.platform.startswith("linux"):
        return f"io_uring exists only on Linux, not on {sys.platform}"
    try:
        with open(sysctl) as f:
            value = f.read().strip()
    except OSError:
        return ""  # kernels before 6.6 have no such switch
    if value == "2":
        return "io_uring refused by the kernel (kernel.io_uring_disabled=2 turns it off)"
    return ""


def _binding_name(stage: dict[str, object] | None) -> str:
    if not stage:
        return "liburing"
    where = f" at {stage['file']}" if stage.get("file") else ""
    return f"liburing {stage.get('version')}{where}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
