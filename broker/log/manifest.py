"""The partition's small metadata files: the Walrus segment manifest and the recovery point.

segments.json lists the Walrus segments (epoch, base offset, end offset once sealed,
entry count and size at sealing) and the log start offset. It is replaced atomically
(write, fsync, rename, fsync the directory) because it is the only record of a seal.

recovery-point holds an offset below which every batch was flushed before the file was
written; recovery verifies CRCs from there on. Losing it costs a longer scan, never data.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from broker.log.errors import LogStorageError
from broker.log.io_backend import storage_error

MANIFEST_NAME = "segments.json"
RECOVERY_POINT_NAME = "recovery-point"
MANIFEST_VERSION = 1


@dataclass(slots=True)
class SegmentInfo:
    """A Walrus segment: the offsets [base_offset, end_offset) written under one epoch.

    entries is the number of records (offsets) and size_bytes the bytes of batches;
    both are final once the segment is sealed.
    """

    epoch: int
    base_offset: int
    end_offset: int | None = None
    entries: int = 0
    size_bytes: int = 0

    @property
    def sealed(self) -> bool:
        return self.end_offset is not None


@dataclass(slots=True)
class Manifest:
    log_start_offset: int = 0
    segments: list[SegmentInfo] = field(default_factory=list)


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_manifest(directory: str) -> Manifest | None:
    path = os.path.join(directory, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LogStorageError(f"unreadable {path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("version") != MANIFEST_VERSION:
        version = raw.get("version") if isinstance(raw, dict) else None
        raise LogStorageError(f"{path}: unknown manifest version {version!r}")
    try:
        manifest = Manifest(
            log_start_offset=int(raw["log_start_offset"]),
            segments=[_segment(entry) for entry in raw["segments"]],
        )
    except (KeyError, TypeError, ValueError) as exc:
        # Valid JSON of the wrong shape is as unreadable as a torn file.
        raise LogStorageError(f"{path}: malformed manifest: {type(exc).__name__}: {exc}") from exc
    return manifest


def _segment(entry: object) -> SegmentInfo:
    if not isinstance(entry, dict):
        raise TypeError(f"segment entry {entry!r} is not an object")
    segment = SegmentInfo(**entry)
    numbers = [segment.epoch, segment.base_offset, segment.entries, segment.size_bytes]
    if segment.end_offset is not None:
        numbers.append(segment.end_offset)
    if not all(type(n) is int for n in numbers):
        raise TypeError(f"segment entry {entry!r} holds a value that is not an integer")
    return segment


def save_manifest(directory: str, manifest: Manifest) -> None:
    path = os.path.join(directory, MANIFEST_NAME)
    tmp = path + ".tmp"
    body = {
        "version": MANIFEST_VERSION,
        "log_start_offset": manifest.log_start_offset,
        "segments": [asdict(s) for s in manifest.segments],
    }
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fdatasync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(directory)
    except OSError as exc:
        raise storage_error(f"write {path}", exc) from exc


def load_recovery_point(directory: str) -> int:
    try:
        with open(os.path.join(directory, RECOVERY_POINT_NAME), encoding="ascii") as f:
            return max(int(f.read().strip() or "0"), 0)
    except (OSError, ValueError):
        return 0


def save_recovery_point(directory: str, offset: int) -> None:
    """Written only after the data below `offset` was flushed; no fsync of its own, since
    a stale or missing point only makes the next recovery scan more."""
    path = os.path.join(directory, RECOVERY_POINT_NAME)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(str(offset))
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(f"write {path}", exc) from exc
