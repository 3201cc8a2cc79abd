"""A small io_uring ring over the liburing 2024.5.3 binding (Cython, built from source).

Importing this module costs nothing and loads no native code: liburing is imported when
a `Ring` is built, and `UringBackend` builds one only after the probe
(`broker.log.uring_probe`) saw a child process do the same without dying. Run as a
script (`python -P uring_ring.py --probe DIR`), this file is that child.

What the binding leaves to its caller, and this class takes care of:
- Its calls hold the GIL while they block, so a wait for an fdatasync would stall every
  other thread (the event loop among them). Submission goes through the binding (it
  does not block), and the wait is our own io_uring_enter through ctypes, which
  releases the GIL.
- Its errors come from the thread's errno, which liburing's raw system calls never set,
  so a stale value from an earlier failed call would name the wrong error; errno is
  cleared before each call whose error we report.
- `iovec` points into the buffers without copying: they stay referenced until their
  entries complete, and forever if the ring fails while the kernel may still read them.
- Its constants depend on the Cython version it was built with; the few we need are
  fixed by the kernel ABI (include/uapi/linux/io_uring.h) and defined here.
- Its package `__init__` must not run: see `load_binding`.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import functools
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

IOSQE_IO_LINK = 1 << 2
IORING_FSYNC_DATASYNC = 1
IORING_ENTER_GETEVENTS = 1
# The io_uring system calls have the same numbers on every architecture.
SYS_IO_URING_ENTER = 426


class _Libc:
    def __init__(self) -> None:
        # use_errno: ctypes saves errno right after the call, before Python code runs.
        enter = ctypes.CDLL(None, use_errno=True).syscall
        enter.restype = ctypes.c_long
        enter.argtypes = [ctypes.c_long] * 5 + [ctypes.c_void_p, ctypes.c_long]
        self.syscall = enter
        # getattr: the name would be mangled inside a class body.
        location = getattr(ctypes.CDLL(None), "__errno_location")
        location.restype = ctypes.POINTER(ctypes.c_int)
        location.argtypes = []
        self.errno_location = location


@functools.cache
def _libc() -> _Libc:
    return _Libc()


def _clear_errno() -> None:
    _libc().errno_location().contents.value = 0


# The binding's extension modules that define what Ring uses.
_BINDING_MODULES = ("queue", "common", "file")
_load_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Binding:
    names: Any  # the classes and functions of _BINDING_MODULES, as attributes
    version: str
    location: str


@functools.cache
def load_binding() -> Binding:
    """The binding, loaded from its extension modules without running its package
    `__init__`.

    That `__init__` (dynamic_import's `importer()`) rewrites a cache file inside the
    installed package on every import, as its check of the cache never succeeds. So two
    processes importing it at once race on that file: one fails with FileNotFoundError
    and is left with a package that has none of the binding's names (seen when four
    brokers started together). And a user who cannot write to site-packages cannot
    import it at all. The extension modules need only the package to exist, as a place
    to find each other in; an empty one stands in while they load. ImportError when the
    binding is absent or is not the one `Ring` is written for."""
    with _load_lock:
        spec = importlib.util.find_spec("liburing")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'liburing' (a package)")
        location = next(iter(spec.submodule_search_locations))
        placed: ModuleType | None = None
        if "liburing" not in sys.modules:
            placed = importlib.util.module_from_spec(spec)  # never executed
            sys.modules["liburing"] = placed
        try:
            modules = [importlib.import_module(f"liburing.{name}") for name in _BINDING_MODULES]
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"liburing at {location} is not the 2024.5.3 binding ({exc})"
            ) from exc
        finally:
            if placed is not None and sys.modules.get("liburing") is placed:
                # A later plain `import liburing` gets the real package.
                del sys.modules["liburing"]
    names = SimpleNamespace()
    for module in modules:
        for attribute, value in vars(module).items():
            if not attribute.startswith("_"):
                setattr(names, attribute, value)
    return Binding(names, _version(os.path.dirname(location)), location)


def _version(site: str) -> str:
    # The distribution installed next to the package, not whichever comes first on
    # sys.path.
    for dist in importlib.metadata.distributions(name="liburing", path=[site]):
        return str(dist.version)
    return "unknown version"


class Ring:
    """One io_uring instance. Not thread-safe: callers serialise their use of it.

    `broken` is set when a submission or a wait fails; from then on the ring is never
    submitted to again (entries of the failed call may still sit in its queue)."""

    def __init__(self, entries: int) -> None:
        lib = load_binding().names
        self._lib = lib
        self._ring = lib.io_uring()
        self._cqe = lib.io_uring_cqe()
        self._pinned: list[object] = []
        self._prepared = 0
        self._open = False
        self.broken = False
        init = lib.io_uring_queue_init
        enter = _libc().syscall  # resolved before errno is cleared: a lookup may set it
        _clear_errno()
        # On failure the binding has already marked its ring active; leaving _open
        # False keeps close() from tearing down a ring that was never set up.
        init(entries, self._ring, 0)
        self._open = True
        self._fd = int(self._ring.ring_fd)
        self._enter = enter
        self._submit = lib.io_uring_submit
        self._space_left = lib.io_uring_sq_space_left
        self._cq_ready = lib.io_uring_cq_ready
        self._peek = lib.io_uring_peek_cqe
        self._seen = lib.io_uring_cqe_seen

    def reserve(self, count: int) -> None:
        """Check that `count` entries fit before preparing any: a half-prepared group
        left in the queue would be submitted by the next call."""
        if self.broken or not self._open:
            raise OSError(errno_codes.EBADFD, "io_uring ring is closed or failed earlier")
        if self._prepared:
            # A preparation that raised half-way left entries no one will wait for.
            self.broken = True
            raise OSError(errno_codes.EBADFD, "io_uring queue holds entries of a failed call")
        if self._space_left(self._ring) < count:
            self.broken = True
            raise OSError(errno_codes.EBUSY, "io_uring submission queue has no room")

    def prep_writev(
        self, fd: int, pieces: Sequence[bytes | bytearray | memoryview], offset: int,
        tag: int, link: bool = False,
    ) -> None:
        """A vectored write of non-empty `pieces` (at most IOV_MAX); `tag` >= 1 names its
        completion; `link` makes the next entry wait for it (and be cancelled if it
        fails or writes short)."""
        lib = self._lib
        views = [_byte_view(piece) for piece in pieces]
        iov = lib.iovec(views)
        self._pinned.append(iov)
        self._pinned.append(views)
        sqe = self._sqe()
        lib.io_uring_prep_writev(sqe, fd, iov, len(views), offset)
        if link:
            lib.io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK)
        sqe.user_data = tag

    def prep_fdatasync(self, fd: int, tag: int) -> None:
        lib = self._lib
        sqe = self._sqe()
        lib.io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC)
        sqe.user_data = tag

    def _sqe(self) -> Any:
        sqe = self._lib.io_uring_get_sqe(self._ring)
        if not sqe:
            # An empty entry would be written through a NULL pointer; reserve() makes
            # this unreachable, and the check keeps it so.
            self.broken = True
            raise OSError(errno_codes.EBUSY, "io_uring submission queue has no room")
        self._prepared += 1
        return sqe

    def submit_and_wait(self, count: int) -> list[tuple[int, int]]:
        """Submit the `count` prepared entries and wait, without the GIL, for all their
        completions: (tag, result) pairs, a negative result being -errno."""
        try:
            if self._prepared != count:
                raise OSError(errno_codes.EINVAL, f"{self._prepared} entries prepared, not {count}")
            self._prepared = 0
            _clear_errno()
            submitted = int(self._submit(self._ring))
        except BaseException:
            self.broken = True
            raise
        completions = self._reap(submitted)
        if submitted != count:
            self.broken = True
            raise OSError(errno_codes.EIO, f"io_uring took {submitted} of {count} entries")
        self._pinned.clear()
        return completions

    def _reap(self, count: int) -> list[tuple[int, int]]:
        done: list[tuple[int, int]] = []
        cqe = self._cqe
        try:
            while len(done) < count:
                if not self._cq_ready(self._ring):
                    self._wait(count - len(done))
                code = int(self._peek(self._ring, cqe))
                if code == -errno_codes.EAGAIN:
                    continue
                if code < 0:
                    raise OSError(-code, os.strerror(-code))
                done.append((int(cqe.user_data), int(cqe.res)))
                self._seen(self._ring, cqe)
        except BaseException:
            # Completions of this call are still due (an interrupt, a failed wait): the
            # next caller must not read them as its own.
            self.broken = True
            raise
        return done

    def _wait(self, count: int) -> None:
        while True:
            if self._enter(SYS_IO_URING_ENTER, self._fd, 0, count, IORING_ENTER_GETEVENTS,
                           None, 0) >= 0:
                return
            code = ctypes.get_errno()
            if code != errno_codes.EINTR:
                raise OSError(code, os.strerror(code))

    def close(self) -> None:
        if self._open:
            self._open = False
            self._lib.io_uring_queue_exit(self._ring)


def _byte_view(piece: bytes | bytearray | memoryview) -> memoryview:
    # The binding takes each buffer as unsigned char[:] and its length from len().
    view = memoryview(piece)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


# --- the probe's child process -------------------------------------------------------


def _say(**fields: object) -> None:
    # Flushed line by line: if the binding kills this process, the parent still knows
    # how far it got.
    print(json.dumps(fields), flush=True)


def _probe(directory: str) -> dict[str, object]:
    _say(stage="import")
    try:
        binding = load_binding()
    except ImportError as exc:
        return {"kind": "missing", "error": f"{type(exc).__name__}: {exc}"}
    version = binding.version
    _say(stage="ring", version=version, file=binding.location)
    try:
        ring = Ring(4)
    except OSError as exc:
        return {"kind": "setup", "errno": exc.errno, "error": exc.strerror or str(exc)}
    _say(stage="write")
    # The three kinds of buffer the log hands to a write.
    payload: list[bytes | bytearray | memoryview] = [
        b"walrus ", bytearray(b"io_uring "), memoryview(b"probe")
    ]
    fd, path = tempfile.mkstemp(prefix="walrus-uring-probe-", dir=directory)
    try:
        os.unlink(path)
        ring.reserve(2)
        ring.prep_writev(fd, payload, 0, tag=1, link=True)
        ring.prep_fdatasync(fd, tag=2)
        results = dict(ring.submit_and_wait(2))
        expected = b"".join(payload)
        for tag in (1, 2):
            if results[tag] < 0:
                code = -results[tag]
                return {"kind": "io", "errno": code, "error": os.strerror(code)}
        if results[1] != len(expected) or os.pread(fd, 64, 0) != expected:
            return {"kind": "io", "errno": None, "error": "the test write landed wrong"}
    finally:
        os.close(fd)
        ring.close()
    return {"kind": "ok", "version": version}


def _probe_main(directory: str) -> int:
    try:
        # A crash is the expected way for a bad binding to fail here; a core file of it
        # is of no use to anyone.
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    try:
        result = _probe(directory)
    except Exception as exc:
        result = {"kind": "failed", "error": f"{type(exc).__name__}: {exc}"}
    _say(result=result)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--probe"] or len(sys.argv) != 3:
        sys.exit("usage: python -P uring_ring.py --probe DIRECTORY")
    sys.exit(_probe_main(sys.argv[2]))
