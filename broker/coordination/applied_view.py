"""The applied metadata as the event loop reads it, and a typed delta for every entry.

The Raft tick thread applies committed entries to its ClusterState under a lock
(coordination/raft.py); proposers' results and log-compaction snapshots come from that
copy. Readers on the event loop do not share it. They read a second ClusterState that
belongs to the loop alone:
- it starts as a copy of the tick thread's state, taken under the lock at the same moment
  the loop starts following (nothing applied is missed or applied twice);
- every entry the tick thread applies is applied here too, decoded afresh from the
  stored payload, in the same order, with the same proposer time. ClusterState is deterministic (Raft depends on that), so the two
  copies agree after every entry;
- a snapshot the tick thread installs is installed here too.

So a reader on the loop takes no lock, and the tick thread never waits for one. The state
changes only between callbacks: what a handler reads before its next await holds still.
Each entry is applied here before the proposer's await returns (both are posted to the
loop in that order), so a proposer reads its own write.

After each entry the followers hear one MetadataDelta, in the same callback that changed
the state: there is no moment at which the state has moved and the delta is unsent."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import Refusal
from .state import ClusterState, Result

log = logging.getLogger(__name__)

SNAPSHOT_KIND = "snapshot"


@dataclass(frozen=True, slots=True)
class MetadataDelta:
    """What one applied entry (or one installed snapshot) did."""

    kind: str  # the command's kind, or SNAPSHOT_KIND
    # The partition the entry is about, when it is about one (roll, reassign, in-sync
    # change, lease, finished copy); None otherwise.
    topic: str | None
    partition: int | None
    refused: bool
    # ClusterState.version and topology_version after the entry.
    version: int
    topology_version: int
    topology_moved: bool
    command: Mapping[str, Any]
    result: Result

    @property
    def scope(self) -> tuple[str, int] | None:
        if self.topic is None or self.partition is None:
            return None
        return self.topic, self.partition


class FollowsApplies(Protocol):
    """What AppliedMetadata needs from the Raft wrapper (MetadataRaft.follow)."""

    def follow(self, on_entry: Callable[[bytes, Result], None],
               on_snapshot: Callable[[bytes], None]) -> bytes: ...


Subscriber = Callable[[MetadataDelta], None]


class AppliedMetadata:
    def __init__(self) -> None:
        self.state = ClusterState()
        self._subscribers: list[Subscriber] = []
        self._following = False

    def follow(self, raft: FollowsApplies) -> None:
        """Start from the tick thread's state and apply what it applies from now on.
        Call on the event loop that reads this state."""
        if self._following:
            raise RuntimeError("already following a metadata raft")
        self.state.load_snapshot(raft.follow(self._on_entry, self._on_snapshot))
        self._following = True

    @contextlib.contextmanager
    def reading(self) -> Iterator[ClusterState]:
        """The applied state. No lock is taken: the state changes only between event
        loop callbacks, so it holds still until the reader's next await. Do not mutate
        what you read."""
        yield self.state

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call subscriber(delta) after every applied entry and installed snapshot, in
        the order subscribed. A subscriber must not await (it runs inside the apply)."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    # ------------------------------------------------------------ from the raft

    def _on_entry(self, payload: bytes, result: Result) -> None:
        state = self.state
        topology_before = state.topology_version
        command: dict[str, Any] = {}
        try:
            # Decoded here, not shared with the tick thread's copy: ClusterState keeps
            # some of a command's lists, and the two copies must never share one.
            entry = json.loads(payload)
            command = entry["c"] if isinstance(entry["c"], dict) else {}
            state.apply(entry["c"], entry["t"])
        except Exception:
            # The tick thread's copy failed on this entry the same way and answered a
            # refusal (raft.py): both copies are in the same state.
            log.debug("metadata entry failed here as on the tick thread", exc_info=True)
        topic, partition = command.get("topic"), command.get("partition")
        self._publish(MetadataDelta(
            kind=str(command.get("kind")),
            topic=topic if isinstance(topic, str) else None,
            partition=partition if isinstance(partition, int) and not isinstance(partition, bool)
            else None,
            refused=isinstance(result, Refusal),
            version=state.version,
            topology_version=state.topology_version,
            topology_moved=state.topology_version != topology_before,
            command=command,
            result=result,
        ))

    def _on_snapshot(self, snapshot: bytes) -> None:
        state = self.state
        state.load_snapshot(snapshot)
        self._publish(MetadataDelta(
            kind=SNAPSHOT_KIND, topic=None, partition=None, refused=False,
            version=state.version, topology_version=state.topology_version,
            topology_moved=True, command={}, result=None,
        ))

    def _publish(self, delta: MetadataDelta) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(delta)
            except Exception:
                # One failing follower must not keep the others from hearing of the entry.
                log.exception("metadata subscriber %r failed on %s", subscriber, delta.kind)
