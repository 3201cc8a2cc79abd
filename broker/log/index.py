"""Sparse offset and time indexes of one log file.

Both live in memory as sorted lists and on disk as fixed-size big-endian entries,
like Kafka's: the offset index holds (offset - base, byte position), the time index
(max timestamp so far, offset - base). Entries reach the disk in bulk when the log
flushes or rolls; the files are hints, rebuilt from the log file whenever they are
missing or do not agree with it.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left, bisect_right

OFFSET_ENTRY = struct.Struct(">II")
TIME_ENTRY = struct.Struct(">qI")


class OffsetIndex:
    """Maps an offset to the byte position of a batch at or before it."""

    __slots__ = ("_pending", "_written", "base_offset", "offsets", "path", "positions")

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.offsets: list[int] = []
        self.positions: list[int] = []
        self._pending = bytearray()
        self._written = 0

    def append(self, offset: int, position: int) -> None:
        self.offsets.append(offset)
        self.positions.append(position)
        self._pending += OFFSET_ENTRY.pack(offset - self.base_offset, position)

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
            self._rewrite()

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
        self._pending.clear()
        self._written = len(entries)
        return True

    def reset(self) -> None:
        self.offsets.clear()
        self.positions.clear()
        self._rewrite()

    def _rewrite(self) -> None:
        self._pending = bytearray(
            b"".join(
                OFFSET_ENTRY.pack(o - self.base_offset, p)
                for o, p in zip(self.offsets, self.positions, strict=True)
            )
        )
        self._written = -1

    def write_out(self, *, sync: bool = False) -> None:
        _write_out(self.path, self._pending, replace=self._written < 0, sync=sync)
        self._written = len(self.offsets)
        self._pending.clear()


class TimeIndex:
    """Maps a timestamp to an offset from which a forward scan finds the first batch
    whose max timestamp reaches it. Entries hold the running maximum, so they rise."""

    __slots__ = ("_pending", "_written", "base_offset", "offsets", "path", "timestamps")

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.timestamps: list[int] = []
        self.offsets: list[int] = []
        self._pending = bytearray()
        self._written = 0

    def maybe_append(self, max_timestamp: int, offset: int) -> None:
        if not self.timestamps or max_timestamp > self.timestamps[-1]:
            self.timestamps.append(max_timestamp)
            self.offsets.append(offset)
            self._pending += TIME_ENTRY.pack(max_timestamp, offset - self.base_offset)

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
            self._rewrite()

    def load(self, next_offset: int) -> bool:
        entries = _read_entries(self.path, TIME_ENTRY)
        if entries is None:
            return False
        last_ts, last_rel = None, -1
        for ts, rel in entries:
            if (last_ts is not None and ts <= last_ts) or rel <= last_rel:
                return False
            if self.base_offset + rel >= next_offset:
                return False
            last_ts, last_rel = ts, rel
        self.timestamps = [ts for ts, _ in entries]
        self.offsets = [self.base_offset + rel for _, rel in entries]
        self._pending.clear()
        self._written = len(entries)
        return True

    def reset(self) -> None:
        self.timestamps.clear()
        self.offsets.clear()
        self._rewrite()

    def _rewrite(self) -> None:
        self._pending = bytearray(
            b"".join(
                TIME_ENTRY.pack(t, o - self.base_offset)
                for t, o in zip(self.timestamps, self.offsets, strict=True)
            )
        )
        self._written = -1

    def write_out(self, *, sync: bool = False) -> None:
        _write_out(self.path, self._pending, replace=self._written < 0, sync=sync)
        self._written = len(self.offsets)
        self._pending.clear()


def _read_entries(path: str, entry: struct.Struct) -> list[tuple[int, int]] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) % entry.size:
        return None
    return [entry.unpack_from(data, i) for i in range(0, len(data), entry.size)]


def _write_out(path: str, pending: bytearray, *, replace: bool, sync: bool) -> None:
    if not pending and not replace and not sync:
        return
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_APPEND)
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(pending)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)
