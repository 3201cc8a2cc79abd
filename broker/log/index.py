"""Sparse offset and time indexes of one log file.

Both live in memory as sorted lists and on disk as fixed-size big-endian entries,
like Kafka's: the offset index holds (offset - base, byte position), the time index
(max timestamp so far, offset - base of the batch that has it). Entries reach the disk
in bulk when the log checkpoints, rolls or closes; the files are hints, rebuilt from
the log file whenever they are missing or do not agree with it.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left, bisect_right

OFFSET_ENTRY = struct.Struct(">II")
TIME_ENTRY = struct.Struct(">qI")


class OffsetIndex:
    """Maps an offset to the byte position of a batch at or before it."""

    __slots__ = ("_on_disk", "base_offset", "offsets", "path", "positions")

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.offsets: list[int] = []
        self.positions: list[int] = []
        # Entries already in the file; -1 when the file must be rewritten whole.
        self._on_disk = 0

    def append(self, offset: int, position: int) -> None:
        self.offsets.append(offset)
        self.positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """Return (offset, position) of the last entry at or below `offset`, or the
        start of the file when there is none."""
        i = bisect_right(self.offsets, offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.offsets[i], self.positions[i]

    def truncate_after_position(self, position: int) -> None:
        """Drop entries at or beyond `position` (the file was cut there)."""
        keep = bisect_left(self.positions, position)
        if keep < len(self.offsets):
            del self.offsets[keep:]
            del self.positions[keep:]
            self._on_disk = -1

    def load(self, file_size: int) -> bool:
        """Read the entries from disk; False when they are missing or implausible."""
        entries = _read_entries(self.path, OFFSET_ENTRY)
        if entries is None:
            return False
        last_rel, last_pos = -1, -1
        for rel, pos in entries:
            if rel <= last_rel or pos <= last_pos or pos >= file_size:
                return False
            last_rel, last_pos = rel, pos
        self.offsets = [self.base_offset + rel for rel, _ in entries]
        self.positions = [pos for _, pos in entries]
        self._on_disk = len(entries)
        return True

    def reset(self) -> None:
        self.offsets.clear()
        self.positions.clear()
        self._on_disk = -1

    def write_out(self, *, sync: bool = False) -> None:
        start = max(self._on_disk, 0)
        base = self.base_offset
        data = b"".join(
            OFFSET_ENTRY.pack(o - base, p)
            for o, p in zip(self.offsets[start:], self.positions[start:], strict=True)
        )
        _write_out(self.path, data, replace=self._on_disk < 0, sync=sync)
        self._on_disk = len(self.offsets)


class TimeIndex:
    """Maps a timestamp to an offset from which a forward scan finds the first batch
    whose max timestamp reaches it. Entries hold the running maximum, so they rise."""

    __slots__ = ("_on_disk", "base_offset", "offsets", "path", "timestamps")

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.timestamps: list[int] = []
        self.offsets: list[int] = []
        self._on_disk = 0

    def maybe_append(self, max_timestamp: int, offset: int) -> None:
        if not self.timestamps or (
            max_timestamp > self.timestamps[-1] and offset > self.offsets[-1]
        ):
            self.timestamps.append(max_timestamp)
            self.offsets.append(offset)

    def scan_start(self, timestamp: int) -> int:
        """An offset whose batch and everything before it is older than `timestamp`
        (so a scan may start there), or the file's base offset."""
        i = bisect_left(self.timestamps, timestamp) - 1
        return self.offsets[i] if i >= 0 else self.base_offset

    def truncate_after_offset(self, offset: int) -> None:
        keep = bisect_left(self.offsets, offset)
        if keep < len(self.offsets):
            del self.offsets[keep:]
            del self.timestamps[keep:]
            self._on_disk = -1

    def load(self) -> bool:
        entries = _read_entries(self.path, TIME_ENTRY)
        if entries is None:
            return False
        last_ts, last_rel = None, -1
        for ts, rel in entries:
            if (last_ts is not None and ts <= last_ts) or rel <= last_rel:
                return False
            last_ts, last_rel = ts, rel
        self.timestamps = [ts for ts, _ in entries]
        self.offsets = [self.base_offset + rel for _, rel in entries]
        self._on_disk = len(entries)
        return True

    def reset(self) -> None:
        self.timestamps.clear()
        self.offsets.clear()
        self._on_disk = -1

    def write_out(self, *, sync: bool = False) -> None:
        start = max(self._on_disk, 0)
        base = self.base_offset
        data = b"".join(
            TIME_ENTRY.pack(t, o - base)
            for t, o in zip(self.timestamps[start:], self.offsets[start:], strict=True)
        )
        _write_out(self.path, data, replace=self._on_disk < 0, sync=sync)
        self._on_disk = len(self.offsets)


def _read_entries(path: str, entry: struct.Struct) -> list[tuple[int, int]] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) % entry.size:
        return None
    return [entry.unpack_from(data, i) for i in range(0, len(data), entry.size)]


def _write_out(path: str, data: bytes, *, replace: bool, sync: bool) -> None:
    if not data and not replace and not sync:
        return
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_APPEND)
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)
