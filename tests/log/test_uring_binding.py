"""The real liburing binding is loaded without its package `__init__`, which rewrites a
cache file inside the installed package on every import: processes that start together
must all get a ring, and none may write into site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from broker.log.uring_probe import probe_io_uring

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SET_UP_A_RING = textwrap.dedent(
    """
    import sys, time
    start = float(sys.argv[1])
    while time.time() < start:
        time.sleep(0.001)
    from broker.log.uring_ring import Ring, load_binding
    Ring(4).close()
    print(load_binding().version, "liburing" in sys.modules)
    """
)


@pytest.fixture(scope="module")
def binding_dir() -> Path:
    probe = probe_io_uring()
    if not probe.ok:
        pytest.skip(f"needs a working io_uring binding: {probe.reason}")
    from broker.log.uring_ring import load_binding

    return Path(load_binding().location)


def _files(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _start(when: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SET_UP_A_RING, repr(when)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_processes_started_together_all_set_up_a_ring(binding_dir):
    before = _files(binding_dir)
    when = time.time() + 1.0  # after every child has started and imported Python
    children = [_start(when) for _ in range(8)]
    outcomes = [child.communicate(timeout=60) for child in children]
    for child, (out, err) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, err
        # The version comes from the dist-info; the stand-in package is gone again.
        assert out.split() == ["2024.5.3", "False"], out
    assert _files(binding_dir) == before, "loading the binding wrote into its package"
