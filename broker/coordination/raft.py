"""MetadataRaft: the one place that knows pysyncobj.

Threading (decided here, relied on by every reader of the metadata): pysyncobj's tick
thread applies committed entries to its ClusterState *under a lock*; proposers' results
and log-compaction snapshots come from that copy, so a snapshot always matches the index
pysyncobj believes is applied. The broker's event loop does not read it: it keeps its
own copy, to which every applied entry is applied again on the loop
(``follow``, coordination/applied_view.py), so its readers take no lock and the tick
thread never waits for a reader. Driving doTick from the loop instead would tie Raft
heartbeats to the broker's request load and starve elections under a busy loop.
``reading()`` (under the lock) remains for code outside a node's loop.

Proposals may be made on any member: a follower forwards them to the leader (pysyncobj
does this), and ``propose`` returns only after *this* node has applied the entry, so a
caller reads its own write from its local state right after the await.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import functools
import io
import json
import logging
import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pysyncobj.tcp_connection
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.poller import POLL_EVENT_TYPE

from .commands import REPEATABLE_KINDS, Command, command_to_dict
from .errors import MetadataError, Refusal
from .raft_errors import (
    NotLeaderError,
    ProposalDiscarded,
    ProposalOutcomeUnknown,
    RaftBindError,
    RaftError,
    RaftUnavailable,
    error_for,
)
from .raft_tuning import RaftTuning
from .state import ClusterState, Result

log = logging.getLogger(__name__)

_RETRY_PAUSE_S = 0.05


class _OverlapTruncationFilter(logging.Filter):
    """With entries sent immediately (RaftTuning.send_immediately) the leader re-sends
    ranges a follower already holds; pysyncobj then truncates and re-appends identical
    committed entries and logs CRITICAL "state machine may have diverged". Raft's log
    matching makes those entries identical, and entries are never applied twice, so the
    record is lowered to INFO instead of paging an operator for every burst."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.CRITICAL and "truncating already-applied" in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class _BindFailureFilter(logging.Filter):
    """pysyncobj logs a failed bind with a traceback from its tick thread; MetadataRaft
    raises RaftBindError with the address instead, so the traceback is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "failed to perform initialization" in str(record.msg):
            record.exc_info = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("pysyncobj.syncobj").addFilter(_OverlapTruncationFilter())
logging.getLogger("pysyncobj.syncobj").addFilter(_BindFailureFilter())

_DUMP_MAGIC = b"WALRUS-METADATA-1\n"


# ------------------------------------------------------------ wire pickles

# pysyncobj's messages are pickles of plain data: dicts, lists, tuples, numbers, text,
# and bytes, which its pickle protocol 2 writes as calls of these two. Nothing else is
# ever sent, so nothing else may be loaded, even from a member that has the secret.
# Protocol 2 names the builtins module by its Python 2 name.
_WIRE_GLOBALS = frozenset(
    {(module, name) for module in ("builtins", "__builtin__")
     for name in ("bytes", "bytearray", "set", "frozenset")} | {("_codecs", "encode")}
)


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _WIRE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not plain data")
        return super().find_class(module, name)


class _WirePickle:
    """What pysyncobj's connections use as `pickle`: its dumps, a loads that builds
    plain data only."""

    dumps = staticmethod(pysyncobj.tcp_connection.pickle.dumps)

    @staticmethod
    def loads(data: bytes) -> Any:
        return _PlainDataUnpickler(io.BytesIO(data)).load()


pysyncobj.tcp_connection.pickle = _WirePickle  # type: ignore[assignment]

# Importing pysyncobj replaces socket.inet_ntop, on every OS, with a Windows-only
# version that raises TypeError on Linux; put the real one back for the whole process.
socket.inet_ntop = _socket.inet_ntop


# ----------------------------------------------------------------- syncobj


class _MetadataSyncObj(SyncObj):  # type: ignore[misc]
    """The pysyncobj object. One replicated method; everything else lives in
    MetadataRaft so the library's class magic stays contained here."""

    def __init__(self, on_entry: Callable[[bytes], Any], *args: Any, **kwargs: Any) -> None:
        self._on_entry = on_entry
        super().__init__(*args, **kwargs)

    @replicated  # type: ignore[untyped-decorator]
    def apply_entry(self, payload: bytes) -> Any:
        return self._on_entry(payload)


# -------------------------------------------------------------------- raft


class MetadataRaft:
    """A Raft member replicating one ClusterState.

    Construct it on the thread that lives as long as it (normally the event loop's):
    pysyncobj stops its tick thread when the constructing thread exits.
    """

    def __init__(
        self,
        node_id: int,
        self_addr: str,
        peers: Sequence[str],
        data_dir: str | os.PathLike[str],
        state: ClusterState,
        tuning: RaftTuning | None = None,
        clock_ms: Callable[[], int] | None = None,
        secret: str | None = None,
    ) -> None:
        """`secret`: the cluster secret. With it every Raft message is authenticated
        (and encrypted) before pysyncobj unpickles it, so a stranger who reaches the
        port cannot make this process load a pickle. Nodes always pass one; None is
        for in-process tests only."""
        self.node_id = node_id
        self.secret = secret
        self.self_addr = self_addr
        self.state = state
        self.tuning = tuning or RaftTuning()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[Any, Result], None]]] = []
        self._followers: list[tuple[asyncio.AbstractEventLoop, Callable[[bytes, Result], None],
                                    Callable[[bytes], None]]] = []
        # Proposals whose entries are applied here but whose callers wait for the fsync
        # that makes them durable; settled once per tick (group commit).
        self._settle_lock = threading.Lock()
        self._to_settle: list[Callable[[], None]] = []
        self._inflight = 0
        # (read end, write end) of the pipe that wakes the tick thread out of poll()
        self._wake_pipe: tuple[int, int] | None = None
        self._last_sync = 0.0
        self._synced_mark: tuple[int, int, int] | None = None
        self._closed = False
        # Told when the Raft leader changes (or is lost): watch_leader().
        self._leader_watchers: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._seen_leader: Any = None

        raft_dir = Path(data_dir) / "raft"
        raft_dir.mkdir(parents=True, exist_ok=True)
        self.raft_dir = raft_dir
        self._journal_path = raft_dir / "journal"
        self._dump_path = raft_dir / "snapshot"
        t = self.tuning
        others = [p for p in peers if p != self_addr]
        election = (t.election_timeout_min_s, t.election_timeout_max_s)
        if not others:
            election = t.single_member_election_timeout_s
        conf = SyncObjConf(
            journalFile=str(self._journal_path),
            fullDumpFile=str(self._dump_path),
            serializer=self._write_dump,
            deserializer=self._read_dump,
            dynamicMembershipChange=True,
            appendEntriesPeriod=t.append_entries_period_s,
            raftMinTimeout=election[0],
            raftMaxTimeout=election[1],
            connectionTimeout=max(t.connection_timeout_s, election[1]),
            connectionRetryTime=t.connection_retry_s,
            autoTickPeriod=t.tick_period_s,
            appendEntriesUseBatch=not t.send_immediately,
            logCompactionMinEntries=t.log_compaction_min_entries,
            logCompactionMinTime=t.log_compaction_min_time_s,
            commandsWaitLeader=True,
            useFork=False,
            # Listen on the host this member is named by, not on every interface.
            bindAddress=self_addr,
            password=secret,
            # pysyncobj retries a failed bind forever; a few tries then a clear error.
            bindRetryTime=t.bind_retry_s,
            maxBindRetries=t.bind_attempts,
        )
        self._syncobj = _MetadataSyncObj(self._apply_payload, self_addr, others, conf=conf)
        try:
            self._syncobj.waitBinded()
        except Exception:
            self._syncobj.destroy_synchronous()
            raise RaftBindError(
                f"cannot listen for Raft traffic on {self_addr}: the port is in use or "
                "the host is not an address of this machine"
            ) from None
        # An O_RDONLY descriptor is enough for fsync, and it follows the journal's inode
        # through pysyncobj's mmap resizes.
        self._journal_fd = os.open(self._journal_path, os.O_RDONLY)
        self._syncobj.addOnTickCallback(self._on_tick)

    # ------------------------------------------------------------- proposing

    async def propose(self, command: Command, timeout: float | None = None) -> Result:
        """Replicate `command` and return its result as applied on this node (a result
        record or a Refusal). Raises a RaftError when no result can be given in time.

        Retries within the timeout while the command is known not to be applied (it
        reached a stale leader, or a new leader overwrote it: both happen around every
        failover), and after an unknown outcome when applying it twice is harmless
        (REPEATABLE_KINDS)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.tuning.propose_timeout_s)
        while True:
            try:
                return await self._propose_once(command, deadline - loop.time())
            except (NotLeaderError, ProposalDiscarded) as exc:
                last: RaftError = exc
            except ProposalOutcomeUnknown as exc:
                if not (exc.retryable and command.KIND in REPEATABLE_KINDS):
                    raise
                last = exc
            if loop.time() + _RETRY_PAUSE_S >= deadline:
                raise last
            await asyncio.sleep(_RETRY_PAUSE_S)

    async def propose_until_applied(self, command: Command, timeout: float) -> Result:
        """propose() for a repeatable command that must get through (what a node
        proposes while it starts): a try that ends without an outcome, as one caught in
        an election does, is made again until `timeout` has passed."""
        if command.KIND not in REPEATABLE_KINDS:
            raise ValueError(f"{command.KIND} is not repeatable; propose it once")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            try:
                return await self.propose(command, min(left, self.tuning.propose_timeout_s))
            except RaftError as exc:
                if loop.time() + _RETRY_PAUSE_S >= deadline:
                    raise
                log.info("%s not applied yet (%s); proposing it again", command.KIND, exc)
            await asyncio.sleep(_RETRY_PAUSE_S)

    async def _propose_once(self, command: Command, timeout: float) -> Result:
        if self._closed:
            raise RaftUnavailable("metadata raft is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        payload = json.dumps(
            {"c": command_to_dict(command), "t": self._clock_ms()}, separators=(",", ":")
        ).encode()

        def settle(outcome: Any) -> None:
            if not future.done():
                future.set_result(outcome)

        def on_done(result: Any, error: int) -> None:  # tick thread
            with self._settle_lock:
                self._inflight -= 1
                if error == FAIL_REASON.SUCCESS and self.tuning.fsync_on_ack:
                    self._to_settle.append(lambda: self._call(loop, lambda: settle(result)))
                    return
            outcome = result if error == FAIL_REASON.SUCCESS else error_for(error, self.leader)
            self._call(loop, lambda: settle(outcome))

        with self._settle_lock:
            self._inflight += 1
        self._syncobj.apply_entry(payload, callback=on_done)
        self._wake()
        try:
            # asyncio.timeout, not wait_for, which on 3.11 can drop the caller's cancel.
            async with asyncio.timeout(max(0.0, timeout)):
                result = await asyncio.shield(future)
        except TimeoutError:
            raise ProposalOutcomeUnknown(
                "no outcome within the proposal timeout", retryable=False
            ) from None
        if isinstance(result, RaftError):
            raise result
        return result

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while we applied
            loop.call_soon_threadsafe(fn)

    def _wake(self) -> None:
        pipe = self._wake_pipe
        if pipe is not None:
            with contextlib.suppress(OSError):  # pipe full: the tick thread is awake anyway
                os.write(pipe[1], b"w")

    def _drain_wake_pipe(self, fd: int, _events: int) -> None:  # tick thread
        with contextlib.suppress(BlockingIOError):
            while os.read(fd, 4096):
                pass

    # --------------------------------------------------------------- applying

    def _apply_payload(self, payload: bytes) -> Result:  # tick thread
        try:
            entry = json.loads(payload)
            command, now_ms = entry["c"], entry["t"]
            with self._lock:
                try:
                    result = self.state.apply(command, now_ms)
                except Exception as exc:
                    # pysyncobj retries an entry whose application raises, forever: one
                    # bad entry would stop all metadata. Every member (and every loop's
                    # copy) fails the same way on it, so a refusal keeps them equal.
                    log.exception("metadata entry could not be applied")
                    result = Refusal(MetadataError.INVALID_REQUEST, f"{type(exc).__name__}: {exc}")
                # Posted under the lock, so follow() hands out a copy that is exactly
                # the state before the first entry its follower hears of. The payload,
                # not the decoded command: a copy built from objects this state holds
                # could share lists with it.
                for loop, on_entry, _ in self._followers:
                    self._call(loop, functools.partial(on_entry, payload, result))
        except Exception as exc:
            log.exception("metadata entry could not be read")
            return Refusal(MetadataError.INVALID_REQUEST, f"{type(exc).__name__}: {exc}")
        for loop, listener in self._listeners:
            self._call(loop, functools.partial(listener, command, result))
        return result

    def _on_tick(self) -> None:  # tick thread, after this tick's entries were applied
        if self._wake_pipe is None:
            # Registered from the tick thread: the poller is not safe to change while
            # another thread is inside poll().
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._syncobj._poller.subscribe(r, self._drain_wake_pipe, POLL_EVENT_TYPE.READ)
            self._wake_pipe = (r, w)
        leader = self._syncobj._getLeader()
        if leader != self._seen_leader:
            self._seen_leader = leader
            log.info("metadata raft leader: %s (term %d)",
                     "none" if leader is None else leader.address, self._syncobj.raftCurrentTerm)
            for loop, on_change in self._leader_watchers:
                self._call(loop, on_change)
        with self._settle_lock:
            pending, self._to_settle = self._to_settle, []
            inflight = self._inflight
        now = time.monotonic()
        mark = (
            self._syncobj.raftCommitIndex,
            self._syncobj.raftCurrentTerm,
            self._syncobj._getRaftLogSize(),
        )
        due = mark != self._synced_mark and now - self._last_sync >= self.tuning.fsync_interval_s
        if pending or due:
            self._sync_to_disk()
            self._synced_mark, self._last_sync = mark, now
        for settle in pending:
            settle()
        if inflight and not self._syncobj.otherNodes and self._syncobj._isLeader():
            # A group of one commits the entries appended in this tick on the next
            # tick; do not let the tick thread sleep a whole tick period before that.
            self._wake()

    def _sync_to_disk(self) -> None:
        """fsync the journal (written through an mmap pysyncobj never flushes), the
        term/vote/commit-index file next to it, and the directory."""
        try:
            os.fsync(self._journal_fd)
            meta = str(self._journal_path) + ".meta"
            if os.path.exists(meta):
                fd = os.open(meta, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            dir_fd = os.open(self.raft_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            log.exception("metadata journal fsync failed")

    # ---------------------------------------------------------- log compaction

    def _write_dump(self, path: str, raft_data: Any) -> None:  # tick thread
        with self._lock:
            snapshot = self.state.to_snapshot()
        raft_bytes = pickle.dumps(raft_data)
        with open(path, "wb") as f:
            f.write(_DUMP_MAGIC + struct.pack(">QQ", len(snapshot), len(raft_bytes)))
            f.write(snapshot)
            f.write(raft_bytes)
            f.flush()
            os.fsync(f.fileno())

    def _read_dump(self, path: str) -> Any:  # tick thread
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(_DUMP_MAGIC):
            raise ValueError(f"{path} is not a Walrus metadata snapshot")
        at = len(_DUMP_MAGIC)
        snap_len, raft_len = struct.unpack_from(">QQ", data, at)
        at += 16
        snapshot = data[at : at + snap_len]
        raft_data = pickle.loads(data[at + snap_len : at + snap_len + raft_len])
        with self._lock:
            self.state.load_snapshot(snapshot)
            for loop, _, on_snapshot in self._followers:
                self._call(loop, functools.partial(on_snapshot, snapshot))
        return raft_data

    def force_log_compaction(self) -> None:
        self._syncobj.forceLogCompaction()
        self._wake()

    # ---------------------------------------------------------------- reading

    @contextlib.contextmanager
    def reading(self) -> Iterator[ClusterState]:
        """The applied state, held still for the duration of the block. Keep blocks
        short, never await inside one (the tick thread would wait for the lock and no
        proposal could complete), and do not mutate what you read."""
        with self._lock:
            yield self.state

    def snapshot(self) -> bytes:
        with self._lock:
            return self.state.to_snapshot()

    def follow(self, on_entry: Callable[[bytes, Result], None],
               on_snapshot: Callable[[bytes], None]) -> bytes:
        """Keep a copy of the state on the calling event loop (applied_view.py): returns
        the state as a snapshot, and from the entry after it on calls, on that loop,
        on_entry(payload, result) for every applied entry (the entry as stored: JSON of
        {"c": command dict, "t": proposer ms}) and on_snapshot(snapshot) for every
        installed snapshot, in apply order."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._followers.append((loop, on_entry, on_snapshot))
            return self.state.to_snapshot()

    def watch_leader(self, on_change: Callable[[], None]) -> None:
        """Call on_change() on the calling event loop whenever this member sees the Raft
        leader change or be lost (no entry is applied for that)."""
        self._leader_watchers.append((asyncio.get_running_loop(), on_change))

    def subscribe(self, listener: Callable[[Any, Result], None]) -> None:
        """Call listener(command_dict, result) on the calling event loop after every
        applied entry (including refusals)."""
        self._listeners.append((asyncio.get_running_loop(), listener))

    # ----------------------------------------------------------------- status

    @property
    def is_leader(self) -> bool:
        return bool(self._syncobj._isLeader())

    @property
    def leader(self) -> str | None:
        node = self._syncobj._getLeader()
        return None if node is None else str(node.address)

    @property
    def term(self) -> int:
        """The Raft term this member is in: it grows with every election, even one the
        same leader wins again."""
        return int(self._syncobj.raftCurrentTerm)

    @property
    def applied_index(self) -> int:
        return int(self._syncobj.raftLastApplied)

    @property
    def members(self) -> list[str]:
        return sorted([self.self_addr, *(n.address for n in self._syncobj.otherNodes)])

    def status(self) -> dict[str, Any]:
        return dict(self._syncobj.getStatus())

    def unreachable_peers(self) -> list[str]:
        """The other members this node has no connection to right now."""
        status = self._syncobj.getStatus()
        prefix = "partner_node_status_server_"
        return sorted(key[len(prefix):] for key, value in status.items()
                      if key.startswith(prefix) and value != 2)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until a leader is known and this node has applied everything it committed
        (for a restarted node: its journal replayed and caught up). Every
        tuning.wait_log_interval_s it logs which members do not answer, so an operator
        starting a cluster sees what it waits for."""
        start = time.monotonic()
        deadline = start + timeout
        next_log = start + self.tuning.wait_log_interval_s
        while not (self._syncobj.isReady() and self._syncobj._getLeader() is not None):
            now = time.monotonic()
            if now > deadline:
                raise RaftUnavailable(self._not_ready_reason(timeout))
            if now >= next_log:
                log.warning("%s", self._not_ready_reason(now - start))
                next_log = now + self.tuning.wait_log_interval_s
            await asyncio.sleep(0.01)

    def _not_ready_reason(self, waited: float) -> str:
        members = len(self._syncobj.otherNodes) + 1
        silent = self.unreachable_peers()
        leader = self._syncobj._getLeader()
        text = (f"metadata raft at {self.self_addr}: no Raft majority after {waited:.0f} s "
                f"({members - len(silent)} of {members} members reachable")
        if silent:
            text += f"; no answer from {', '.join(silent)}"
        if leader is not None:
            text += f"; leader {leader.address}, still catching up"
        return text + ")"

    # ------------------------------------------------------------- membership

    async def add_node(self, address: str, timeout: float | None = None) -> None:
        """Add a member (one change at a time; wait for it before the next)."""
        await self._membership(self._syncobj.addNodeToCluster, address, timeout)

    async def remove_node(self, address: str, timeout: float | None = None) -> None:
        await self._membership(self._syncobj.removeNodeFromCluster, address, timeout)

    async def _membership(
        self, change: Callable[..., None], address: str, timeout: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def settle(error: int) -> None:
            if not future.done():
                future.set_result(error)

        def on_done(_result: Any, error: int) -> None:  # tick thread
            self._call(loop, lambda: settle(error))

        change(address, callback=on_done)
        self._wake()
        try:
            async with asyncio.timeout(timeout or self.tuning.propose_timeout_s):
                error = await future
        except TimeoutError:
            raise ProposalOutcomeUnknown(f"membership change for {address} timed out") from None
        if error != FAIL_REASON.SUCCESS:
            raise error_for(error, self.leader)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Stop the member (joins its tick thread) after a last fsync."""
        if self._closed:
            return
        self._closed = True
        self._syncobj.destroy_synchronous()
        self._sync_to_disk()
        os.close(self._journal_fd)
        if self._wake_pipe is not None:
            for fd in self._wake_pipe:
                os.close(fd)
            self._wake_pipe = None
