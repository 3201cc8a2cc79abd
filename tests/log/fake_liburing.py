"""Fake `liburing` packages, each failing the way a real binding fails on some host.

A test writes one into a directory of its own and puts that directory first on the
import path of the process under test (the probe's child, or a broker)."""

from __future__ import annotations

import textwrap
from pathlib import Path

FAKES = {
    # The liburing 2026 wheels on a CPU without AVX-512: the ring constructor runs an
    # illegal instruction and the kernel kills the process.
    "sigill": """
        import os
        import signal

        __version__ = "0.0+fake-sigill"

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

        __version__ = "0.0+fake-enosys"

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

        __version__ = "0.0+fake-hang"

        def io_uring():
            time.sleep(3600)
    """,
}


def write_fake_liburing(directory: Path, behaviour: str) -> Path:
    """Write the fake named `behaviour` as a package under `directory`; returns the
    directory to put on the import path."""
    package = directory / "liburing"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(FAKES[behaviour]).lstrip())
    return directory
