"""The groups one coordinator serves, and whether it is serving them at all."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from broker.groups.group import Group
from broker.groups.offsets import TopicPartition
from broker.groups.results import JoinResult, SyncResult
from broker.groups.state import GroupState
from broker.protocol.errors import ErrorCode


class GroupDirectory:
    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        # Commits per group still being written, so require_stable fetches can tell.
        self.pending_commits: dict[str, Counter[TopicPartition]] = {}
        self.loaded = False
        self.closed = False
        self._background: set[asyncio.Task[None]] = set()
        self._writes: set[asyncio.Task[None]] = set()

    def status_error(self, group_id: str, *, require_group_id: bool) -> int | None:
        """The error every request gets before the group itself is looked at."""
        if self.closed:
            return ErrorCode.NOT_COORDINATOR
        if not self.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        if require_group_id and group_id == "":
            return ErrorCode.INVALID_GROUP_ID
        return None

    def get(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    def create(self, group_id: str) -> Group:
        return self.adopt(Group(group_id))

    def adopt(self, group: Group) -> Group:
        self.groups[group.group_id] = group
        return group

    def drop(self, group: Group, error_code: int) -> None:
        """Stop serving ``group``: it goes Dead and a new group may take its id."""
        if self.groups.get(group.group_id) is group:
            del self.groups[group.group_id]
        retire(group, error_code)

    def has_pending_commits(self, group_id: str) -> bool:
        return group_id in self.pending_commits

    def spawn(self, coro: Coroutine[Any, Any, None], *, finish_on_close: bool = False) -> None:
        """Run background work tied to this coordinator's lifetime. Work that must
        finish on close (a store write) is waited for by `finish_writes`."""
        task = asyncio.get_running_loop().create_task(coro)
        tasks = self._writes if finish_on_close else self._background
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def finish_writes(self, timeout_s: float) -> None:
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=timeout_s)

    def close(self) -> None:
        self.closed = True
        for task in [*self._background, *self._writes]:
            task.cancel()
        for group in list(self.groups.values()):
            retire(group, ErrorCode.NOT_COORDINATOR)
        self.groups.clear()


def retire(group: Group, error_code: int) -> None:
    """Stop a group's timers and answer its parked requests with ``error_code``."""
    group.timers.cancel_all()
    for member in group.members.values():
        member.complete_join(JoinResult(error_code, member_id=member.member_id))
        member.complete_sync(SyncResult(error_code))
    group.transition_to(GroupState.DEAD)
