"""Fake `liburing` packages, each failing the way a real binding fails on some host.

A test writes one into a directory of its own and puts that directory first on the
import path of the process under test (the probe's child, or a broker). Each is laid
out as the real binding is: a package whose `queue` module holds the ring functions,
and a dist-info beside it that names its version. Its `__init__` fails if run, as
Walrus loads the binding's modules without it."""

from __future__ import annotations

import textwrap
from pathlib import Path

FAKES = {
    # The liburing 2026 wheels on a CPU without AVX-512: the ring constructor runs an
    # illegal instruction and the kernel kills the process.
    "sigill": """
        import os
        import signal

        def io_uring():
            os.kill(os.getpid(), signal.SIGILL)
    """,
    # A binding whose native library is missing or broken.
    "importerror": """
        raise ImportError("fake binding: liburing.so.2: cannot open shared object file")
    """,
    # A kernel without io_uring, or an emulator (qemu-user) that does not pass it on.
    "enosys": """
        import errno

        class io_uring:
            pass

        class io_uring_cqe:
            pass

        def io_uring_queue_init(entries, ring, flags=0):
            raise OSError(errno.ENOSYS, "Function not implemented")
    """,
    # A binding that never returns.
    "hang": """
        import time

        def io_uring():
            time.sleep(3600)
    """,
}


def write_fake_liburing(directory: Path, behaviour: str) -> Path:
    """Write the fake named `behaviour` as a package under `directory`; returns the
    directory to put on the import path."""
    package = directory / "liburing"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise RuntimeError("the package __init__ ran")\n')
    (package / "queue.py").write_text(textwrap.dedent(FAKES[behaviour]).lstrip())
    (package / "common.py").write_text("")
    (package / "file.py").write_text("")
    version = f"0.0+fake-{behaviour}"
    dist = directory / f"liburing-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: liburing\nVersion: {version}\n")
    return directory
