"""Waking whoever waits for the metadata's topology to move (a roll, a new leader, a
changed replica set): ClusterState.topology_version, observed after each apply."""

from __future__ import annotations

import asyncio


class TopologyWatch:
    def __init__(self) -> None:
        self.version = -1
        self._waiters: set[asyncio.Future[None]] = set()

    def observe(self, version: int) -> bool:
        """Note the applied state's topology version; True (and every waiter woken) when
        it moved since the last call."""
        if version == self.version:
            return False
        self.version = version
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return True

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Complete `waiter` when the topology next moves."""
        self._waiters.add(waiter)

    def remove_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)
