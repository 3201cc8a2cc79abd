"""Which files retention deletes: Kafka's rules, as predicates over the oldest file.

The log asks them about its head file, deletes it while the answer is yes, and never
deletes its last (active) file.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.log.log_file import NO_TIMESTAMP, LogFile

FilePredicate = Callable[[LogFile], bool]


def older_than(now_ms: int, retention_ms: int) -> FilePredicate:
    """retention.ms: a file goes when its newest batch is older than the limit (an
    empty file is aged from its creation)."""

    def expired(log_file: LogFile) -> bool:
        newest = log_file.max_timestamp
        if newest == NO_TIMESTAMP:
            newest = log_file.created_ms
        return now_ms - newest > retention_ms

    return expired


def beyond_size(total_bytes: int, retention_bytes: int) -> FilePredicate:
    """retention.bytes: a file goes while the log's excess over the limit covers it
    whole, so the log stays within one file of the limit and never below it."""
    excess = total_bytes - retention_bytes

    def expired(log_file: LogFile) -> bool:
        nonlocal excess
        if excess >= log_file.size:
            excess -= log_file.size
            return True
        return False

    return expired
