"""The partitions this node holds, opened on first use and at start-up."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from broker.log import LogConfig, LogError, LogManager
from broker.partitions.replica import PartitionReplica

log = logging.getLogger(__name__)


class ReplicaManager:
    def __init__(self, logs: LogManager, log_config: Callable[[str], LogConfig],
                 sealed_ends: Callable[[str, int], dict[int, int]] | None = None,
                 producers_at: Callable[[str, int, int, int], list[Any] | None] | None = None) -> None:
        self.logs = logs
        self._log_config = log_config
        self._sealed_ends = sealed_ends or (lambda topic, partition: {})
        self._producers_at = producers_at or (lambda topic, partition, epoch, base: None)
        self._replicas: dict[tuple[str, int], PartitionReplica] = {}

    def open_existing(self, keep: Callable[[str, int], bool]) -> None:
        """Open (and recover) every partition found on disk; delete those of topics the
        metadata no longer has (deleted while this node was down)."""
        for topic, partition in self.logs.open_all():
            if keep(topic, partition):
                if not self.is_offline(topic, partition):
                    self.get_or_open(topic, partition)
            else:
                log.info("deleting %s-%d: its topic no longer exists", topic, partition)
                self.logs.delete_topic(topic)

    def reconcile(self) -> None:
        """Bring local segments in line with seals the metadata applied while this node
        was down (they were replayed before it could act on them): a segment sealed by
        another node's failover loses the tail this node alone had past the seal."""
        for (topic, partition), replica in self._replicas.items():
            ends = self._sealed_ends(topic, partition)
            epoch = replica.log.log.active_epoch
            try:
                if epoch in ends and not replica.seal_at(epoch, ends[epoch]):
                    log.warning("%s-%d: holds less of epoch %d than its seal at %d",
                                topic, partition, epoch, ends[epoch])
            except LogError as exc:
                # One partition that cannot be brought in line must not stop the node.
                log.error("%s-%d: cannot apply the seal of epoch %d: %s", topic, partition, epoch, exc)

    def get(self, topic: str, partition: int) -> PartitionReplica | None:
        return self._replicas.get((topic, partition))

    def is_offline(self, topic: str, partition: int) -> bool:
        """Its files could not be opened: requests for it get KAFKA_STORAGE_ERROR."""
        return self.logs.is_offline(topic, partition)

    def get_or_open(self, topic: str, partition: int) -> PartitionReplica:
        """Raises PartitionOfflineError for an offline partition."""
        replica = self._replicas.get((topic, partition))
        if replica is None:
            wrapped = self.logs.get_or_create(topic, partition, config=self._log_config(topic))
            replica = PartitionReplica(
                topic, partition, wrapped, lambda: self._sealed_ends(topic, partition),
                lambda epoch, base: self._producers_at(topic, partition, epoch, base),
            )
            self._replicas[(topic, partition)] = replica
        return replica

    def replicas(self) -> list[PartitionReplica]:
        return list(self._replicas.values())

    def delete_topic(self, topic: str) -> None:
        for key in [k for k in self._replicas if k[0] == topic]:
            self._replicas.pop(key).wake_waiters()
        self.logs.delete_topic(topic)

    def reconfigure(self, topic: str | None = None) -> None:
        """Give open logs their current config after an AlterConfigs."""
        for (name, _), replica in self._replicas.items():
            if topic is None or name == topic:
                replica.log.log.config = self._log_config(name)

    def close(self) -> None:
        for replica in self._replicas.values():
            replica.wake_waiters()
        self._replicas.clear()
        self.logs.close()
