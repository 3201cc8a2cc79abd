"""Start-up recovery of a partition directory: which files to keep, what to cut.

Each file recovers itself (`LogFile.recover`: indexes, CRC checks after the recovery
point, a cut at the first bad batch); this module walks the files in order, keeps the
log dense, and drops whatever follows a cut.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from broker.log.log_file import LogFile

logger = logging.getLogger("walrus.log")

_LOG_FILE = re.compile(r"^(\d{20})\.log$")


@dataclass(slots=True)
class RecoveryReport:
    """What open() found: files cut, bytes dropped, files deleted."""

    truncated_bytes: int = 0
    cuts: list[str] = field(default_factory=list)
    files_deleted: int = 0

    def note(self, message: str) -> None:
        logger.warning("log recovery: %s", message)
        self.cuts.append(message)


def log_file_bases(directory: str) -> list[int]:
    return sorted(int(m.group(1)) for name in os.listdir(directory) if (m := _LOG_FILE.match(name)))


def recover_files(
    directory: str,
    recovery_point: int,
    index_interval: int,
    segment_bases: Collection[int],
    report: RecoveryReport,
) -> list[LogFile]:
    """Open and recover every log file of `directory`, oldest first.

    A file must start where the one before it ends, except where a Walrus segment
    begins after a gap (`segment_bases`: the offsets between were written on another
    node). After the first cut, and at any other discontinuity, the rest is deleted.
    """
    files: list[LogFile] = []
    expected: int | None = None
    dropping = False
    for base in log_file_bases(directory):
        log_file = LogFile.open_existing(directory, base, index_interval)
        gap = expected is not None and base > expected and base in segment_bases
        if dropping or (expected is not None and base != expected and not gap):
            why = "after a cut" if dropping else f"does not start at {expected}"
            report.note(f"{log_file.path}: deleted ({why}), {log_file.size} bytes")
            report.files_deleted += 1
            report.truncated_bytes += log_file.size
            log_file.delete()
            dropping = True
            continue
        cut = log_file.recover(recovery_point)
        if cut is not None:
            report.note(
                f"{log_file.path}: cut {cut.bytes_cut} bytes at position {cut.position} "
                f"(offset {log_file.next_offset}): {cut.reason}"
            )
            report.truncated_bytes += cut.bytes_cut
            dropping = True
        files.append(log_file)
        expected = log_file.next_offset
    return files
