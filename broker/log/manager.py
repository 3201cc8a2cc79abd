"""All partition logs of one data directory: <data>/<topic>-<partition>/."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable

from broker.log.config import LogConfig
from broker.log.errors import LogStorageError, PartitionOfflineError
from broker.log.flusher import AsyncLog, Flusher
from broker.log.io_backend import IoBackend, open_backend
from broker.log.partition_log import PartitionLog

logger = logging.getLogger("walrus.log")

_PARTITION_DIR = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)$")
TopicPartition = tuple[str, int]


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


class LogManager:
    """Opens every partition at start-up, creates and deletes them, runs retention.

    One io backend (one io_uring ring when available) and one flusher thread serve every
    log. `config_for(topic)` gives each topic its LogConfig (topic overrides on top of the
    broker defaults); the broker supplies it from its metadata.
    """

    def __init__(
        self,
        data_dir: str,
        default_config: LogConfig | None = None,
        *,
        config_for: Callable[[str], LogConfig] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.default_config = default_config or LogConfig()
        self._config_for = config_for
        self._logs: dict[TopicPartition, AsyncLog] = {}
        # Partitions whose files could not be opened, with why: offline until restart.
        self.offline: dict[TopicPartition, str] = {}
        self._lock = threading.Lock()
        os.makedirs(data_dir, exist_ok=True)
        self.backend: IoBackend = open_backend(self.default_config.io_backend)
        logger.info("log manager %s: io backend %s", data_dir, self.backend.name)
        self.flusher = Flusher()

    def config(self, topic: str) -> LogConfig:
        return self._config_for(topic) if self._config_for else self.default_config

    def open_all(self) -> list[TopicPartition]:
        """Open (and recover) every partition directory found in the data dir; returns
        them all. One whose files cannot be read goes offline alone (see `offline`):
        the others open and serve."""
        found: list[TopicPartition] = []
        for name in sorted(os.listdir(self.data_dir)):
            match = _PARTITION_DIR.match(name)
            if not match or not os.path.isdir(os.path.join(self.data_dir, name)):
                continue
            key = (match["topic"], int(match["partition"]))
            found.append(key)
            with contextlib.suppress(PartitionOfflineError):  # logged as it went offline
                self.get_or_create(*key)
        return found

    def get_or_create(
        self, topic: str, partition: int, *, config: LogConfig | None = None, epoch: int = 0
    ) -> AsyncLog:
        """The partition's log, opened (and recovered) on first use. Raises
        PartitionOfflineError for a partition whose files could not be opened."""
        with self._lock:
            key = (topic, partition)
            existing = self._logs.get(key)
            if existing is not None:
                return existing
            if key in self.offline:
                raise PartitionOfflineError(f"{topic}-{partition} is offline: {self.offline[key]}")
            directory = os.path.join(self.data_dir, partition_dir_name(topic, partition))
            try:
                log = PartitionLog.open(
                    directory, config or self.config(topic), epoch=epoch, backend=self.backend
                )
            except Exception as exc:
                # Whatever the files hold, one partition must not take the broker down:
                # it goes offline, and its error is answered for it alone.
                why = f"{type(exc).__name__}: {exc}"
                self.offline[key] = why
                logger.error(
                    "partition %s-%d is offline: its files in %s cannot be opened (%s); the "
                    "broker answers KAFKA_STORAGE_ERROR for it until they are repaired and "
                    "the broker restarted",
                    topic, partition, directory, why,
                )
                raise PartitionOfflineError(f"{topic}-{partition} is offline: {why}") from exc
            wrapped = AsyncLog(log, self.flusher)
            self._logs[key] = wrapped
            return wrapped

    def is_offline(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.offline

    def get(self, topic: str, partition: int) -> AsyncLog | None:
        return self._logs.get((topic, partition))

    def partitions(self) -> list[TopicPartition]:
        return sorted(self._logs)

    def delete_topic(self, topic: str) -> int:
        """Close and remove every partition of `topic`; returns how many went."""
        with self._lock:
            doomed = [key for key in self._logs if key[0] == topic]
            for key in doomed:
                wrapped = self._logs.pop(key)
                self.flusher.unwatch(wrapped.log)
                wrapped.log.delete()
        # Directories not opened yet (e.g. left by an earlier run, or offline) go as well.
        for key in [key for key in self.offline if key[0] == topic]:
            del self.offline[key]
        for name in os.listdir(self.data_dir):
            match = _PARTITION_DIR.match(name)
            if match and match["topic"] == topic and (topic, int(match["partition"])) not in doomed:
                shutil.rmtree(os.path.join(self.data_dir, name))
                doomed.append((topic, int(match["partition"])))
        return len(doomed)

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Run retention on every log (the broker calls this periodically); returns the
        number of files deleted. A failing log is logged and skipped."""
        deleted = 0
        for key, wrapped in list(self._logs.items()):
            try:
                deleted += wrapped.log.apply_retention(now_ms)
            except LogStorageError as exc:
                logger.error("retention of %s-%d failed: %s", key[0], key[1], exc)
        return deleted

    def close(self) -> None:
        self.flusher.stop()
        with self._lock:
            for wrapped in self._logs.values():
                try:
                    wrapped.log.close()
                except LogStorageError as exc:
                    logger.error("closing %s failed: %s", wrapped.log.directory, exc)
            self._logs.clear()
        self.backend.close()
