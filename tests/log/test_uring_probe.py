"""The io_uring probe: a binding that crashes, is missing, or meets a kernel that says
no is found out in a child process; `auto` then writes with POSIX and says why once,
and an explicit `io_uring` is a LogStorageError with the same reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from broker.log.uring_probe import kernel_refusal, probe_io_uring, run_probe

from .fake_liburing import write_fake_liburing

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# fake -> (probe kind, how the reason begins, level of the one line `auto` logs)
EXPECTED = {
    "sigill": ("crashed", "io_uring binding crashed (SIGILL) in a probe process: ", "WARNING"),
    "importerror": ("missing", "io_uring binding not installed or not importable (", "INFO"),
    "enosys": ("refused", "io_uring refused by the kernel (ENOSYS: ", "INFO"),
}


@pytest.mark.parametrize("fake", sorted(EXPECTED))
def test_probe_says_why_a_binding_cannot_be_used(tmp_path, fake):
    path = write_fake_liburing(tmp_path, fake)
    result = run_probe([str(path), *sys.path])
    kind, opening, _ = EXPECTED[fake]
    assert (result.kind, result.ok) == (kind, False)
    assert result.reason.startswith(opening), result.reason
    assert "\n" not in result.reason


def test_probe_names_the_binding_and_the_step_that_crashed(tmp_path):
    path = write_fake_liburing(tmp_path, "sigill")
    reason = run_probe([str(path), *sys.path]).reason
    assert "liburing 0.0+fake-sigill at " in reason
    assert str(tmp_path) in reason
    assert "while setting up a ring" in reason
    assert reason.endswith("the supported binding is liburing==2024.5.3")


def test_probe_kills_a_binding_that_hangs(tmp_path):
    path = write_fake_liburing(tmp_path, "hang")
    result = run_probe([str(path), *sys.path], timeout=1.0)
    assert result.kind == "hung"
    assert result.reason == "io_uring probe process hung for 1 s and was killed"
    assert result.elapsed_ms < 5000


@pytest.mark.parametrize(
    ("value", "refused"), [("0", False), ("1", False), ("2", True)]
)
def test_io_uring_disabled_sysctl_of_2_is_a_reason_without_a_probe(tmp_path, value, refused):
    # 1 lets privileged processes (or kernel.io_uring_group) in: only a probe can tell.
    sysctl = tmp_path / "io_uring_disabled"
    sysctl.write_text(value + "\n")
    reason = kernel_refusal(str(sysctl))
    assert bool(reason) == refused
    if refused:
        assert reason == "io_uring refused by the kernel (kernel.io_uring_disabled=2 turns it off)"


def test_probe_result_is_kept_for_the_process():
    assert probe_io_uring() is probe_io_uring()


OPENER = textwrap.dedent(
    """
    import json, logging, sys
    from broker.log import LogStorageError, open_backend
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        open_backend("io_uring")
        explicit = None
    except LogStorageError as exc:
        explicit = [str(exc), exc.errno]
    auto = [open_backend("auto").name for _ in range(3)]
    print(json.dumps({"explicit": explicit, "auto": auto,
                      "imported": "liburing" in sys.modules}))
    """
)


@pytest.mark.parametrize("fake", sorted(EXPECTED))
def test_open_backend_refuses_io_uring_and_auto_falls_back_with_the_reason(tmp_path, fake):
    path = write_fake_liburing(tmp_path, fake)
    done = subprocess.run(
        [sys.executable, "-c", OPENER],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(path), ROOT])),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    _, opening, level = EXPECTED[fake]
    message, code = report["explicit"]
    assert message.startswith("io backend io_uring is unavailable: " + opening), message
    assert code == (38 if fake == "enosys" else None)  # ENOSYS
    assert report["auto"] == ["posix"] * 3
    # The process that asked never loaded the binding; only the probe's child did.
    assert report["imported"] is False
    told = [line for line in done.stderr.splitlines() if "log io backend" in line]
    assert told[0].startswith(f"{level} walrus.log: log io backend: posix ({opening}")
    assert all(line.startswith("DEBUG") for line in told[1:]), told
