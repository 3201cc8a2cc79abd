"""Per-topic log settings, read from Kafka's topic configuration names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

IoBackendName = Literal["auto", "io_uring", "posix"]
TimestampType = Literal["CreateTime", "LogAppendTime"]

_GIB = 1 << 30
_WEEK_MS = 7 * 24 * 3600 * 1000

# Kafka topic config name -> (LogConfig field, parser). A Kafka "unlimited" flush
# setting is Long.MAX_VALUE; we keep None for "never by count / by time".
_LONG_MAX = (1 << 63) - 1


def _int(value: str | int) -> int:
    return int(value)


def _flush_messages(value: str | int) -> int | None:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return None if number >= _LONG_MAX else number


def _flush_ms(value: str | int) -> int | None:
    number = int(value)
    if number < 0:
        raise ValueError("must be at least 0")
    return None if number >= _LONG_MAX else number


def _backend(value: str | int) -> str:
    name = str(value)
    if name not in ("auto", "io_uring", "posix"):
        raise ValueError(f"io backend must be auto, io_uring or posix, not {name!r}")
    return name


def _timestamp_type(value: str | int) -> str:
    name = str(value)
    if name not in ("CreateTime", "LogAppendTime"):
        raise ValueError(
            f"message.timestamp.type must be CreateTime or LogAppendTime, not {name!r}"
        )
    return name


_TOPIC_KEYS = {
    "segment.bytes": ("segment_bytes", _int),
    "segment.ms": ("segment_ms", _int),
    "segment.index.bytes": ("segment_index_bytes", _int),
    "index.interval.bytes": ("index_interval_bytes", _int),
    "retention.ms": ("retention_ms", _int),
    "retention.bytes": ("retention_bytes", _int),
    "flush.messages": ("flush_messages", _flush_messages),
    "flush.ms": ("flush_ms", _flush_ms),
    "max.message.bytes": ("max_message_bytes", _int),
    "message.timestamp.type": ("message_timestamp_type", _timestamp_type),
    "walrus.io.backend": ("io_backend", _backend),
}


@dataclass(slots=True, frozen=True)
class LogConfig:
    """Settings of one partition's log; defaults follow Kafka's topic defaults.

    flush_messages / flush_ms: None leaves flushing to the operating system (Kafka's
    default); flush_messages=1 makes every append durable before it returns.
    """

    segment_bytes: int = _GIB
    segment_ms: int = _WEEK_MS
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    retention_ms: int = _WEEK_MS
    retention_bytes: int = -1
    flush_messages: int | None = None
    flush_ms: int | None = None
    io_backend: str = "auto"
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"

    def __post_init__(self) -> None:
        if not 1024 <= self.segment_bytes <= (1 << 31) - 1:
            # Index entries store byte positions in 32 bits, as Kafka's do.
            raise ValueError("segment_bytes must be between 1024 and 2^31 - 1")
        if self.index_interval_bytes < 0:
            raise ValueError("index_interval_bytes must be >= 0")
        _backend(self.io_backend)
        _timestamp_type(self.message_timestamp_type)

    @classmethod
    def from_topic_config(
        cls, topic_config: Mapping[str, str | int], base: LogConfig | None = None
    ) -> LogConfig:
        """Build from Kafka names ("retention.ms", "flush.messages", ...).

        Names the log does not use (e.g. "cleanup.policy") are ignored, so the broker can
        pass a topic's whole configuration.
        """
        changes: dict[str, Any] = {}
        for key, raw in topic_config.items():
            entry = _TOPIC_KEYS.get(key)
            if entry is None or raw is None:
                continue
            name, parse = entry
            try:
                changes[name] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"invalid value for {key}: {raw!r} ({exc})") from None
        return replace(base or cls(), **changes)

    @property
    def syncs_every_append(self) -> bool:
        return self.flush_messages == 1 or self.flush_ms == 0


TOPIC_CONFIG_KEYS: tuple[str, ...] = tuple(_TOPIC_KEYS)
LOG_CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LogConfig))
