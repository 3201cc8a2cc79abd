"""Cluster membership while the cluster runs: the admin protocol of a node's Raft port.

pysyncobj answers small admin requests on the Raft port itself (what its
``syncobj_admin`` utility sends: ``["status"]``, ``["add", "HOST:PORT"]``,
``["remove", "HOST:PORT"]``). Walrus adds two of its own on the same port, so an
operator needs no Kafka listener and no extra port:

- ``walrus_status``: the members, the Raft leader and the registered brokers, as one
  dict;
- ``walrus_remove``: remove a member from Raft, then unregister its broker through Raft
  (UnregisterBroker), so Metadata stops listing it and rotation stops choosing it. The
  removal runs in the background and the request is answered at once with its state
  ("running", then "done" or the error): the caller asks again, on a fresh connection,
  until it is done. Waiting on one connection for a change that reshapes the Raft group
  lost the connection now and then.
- ``walrus_copies``: the sealed-segment copies this node is making (re-replication).
- ``walrus_step_down``: the Raft leader hands leadership to a caught-up member. A
  leader cannot remove itself (pysyncobj refuses, every time), so removing the leader
  first asks it to step down.

Adding a member is pysyncobj's own ``add``: a broker registers itself when it starts.

Threading: admin requests arrive on pysyncobj's tick thread. Status is read there under
the metadata lock; removal is two proposals, which run on the broker's event loop, and
its reply goes back through the tick thread (the admin connection belongs to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pysyncobj.utility import TcpUtility, UtilityException

from .commands import UnregisterBroker
from .errors import MetadataError, Refusal
from .raft import MetadataRaft
from .raft_errors import RaftError
from .resync_plan import under_replicated

log = logging.getLogger(__name__)

STATUS = "walrus_status"
REMOVE = "walrus_remove"
COPIES = "walrus_copies"
STEP_DOWN = "walrus_step_down"
ADD = "add"  # pysyncobj's own

Reply = Callable[[Any, Any], None]


class MembershipError(Exception):
    """An admin request that could not be made or was refused, with the reason."""


class NoAnswer(MembershipError):
    """The Raft port could not be reached or closed the connection before answering."""


@dataclass(slots=True)
class BrokerEntry:
    node_id: int
    host: str
    port: int
    raft_address: str | None
    alive: bool


@dataclass(slots=True)
class ClusterStatus:
    """What `walrus-broker cluster status` prints."""

    via: str
    leader: str | None
    members: list[str]
    brokers: list[BrokerEntry]
    # Sealed segments below their replication factor (resync_plan.SealedGap as dicts).
    under_replicated: list[dict[str, Any]] = field(default_factory=list)
    # Copies in progress, as the nodes making them report them (walrus_copies).
    copies: list[dict[str, Any]] = field(default_factory=list)

    def node_for(self, raft_address: str) -> BrokerEntry | None:
        return next((b for b in self.brokers if b.raft_address == raft_address), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "leader": self.leader,
            "members": list(self.members),
            "brokers": [
                {"node_id": b.node_id, "host": b.host, "port": b.port,
                 "raft_address": b.raft_address, "alive": b.alive}
                for b in self.brokers
            ],
            "under_replicated": [dict(g) for g in self.under_replicated],
            "copies": [dict(c) for c in self.copies],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterStatus:
        return cls(d["via"], d["leader"], list(d["members"]),
                   [BrokerEntry(**b) for b in d["brokers"]],
                   list(d.get("under_replicated", [])), list(d.get("copies", [])))


# ------------------------------------------------------------------ serving


REMOVE_RETRY_S = 30.0
# One attempt's wait for its answer: a change commits in milliseconds, and one left
# unanswered (its leader replaced meanwhile) is asked again after this.
REMOVE_ATTEMPT_S = 5.0
RUNNING = "running"
DONE = "done"


class MembershipAdmin:
    """Serves the Walrus admin requests on one member's Raft port."""

    def __init__(self, raft: MetadataRaft, clock_ms: Callable[[], int] | None = None,
                 copies: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self._raft = raft
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replies_lock = threading.Lock()
        self._replies: list[Callable[[], None]] = []
        # Removals in progress or finished and not yet reported, by (node id, address).
        self._removals: dict[tuple[int, str], Any] = {}
        self.copies = copies or list

    def install(self) -> None:
        """Register the requests; call on the event loop that owns the node."""
        self._loop = asyncio.get_running_loop()
        syncobj = self._raft._syncobj
        # pysyncobj keeps its transport private; its admin hook is on the transport.
        transport = syncobj._SyncObj__transport
        transport.setOnUtilityMessageCallback(STATUS, self._on_status)
        transport.setOnUtilityMessageCallback(REMOVE, self._on_remove)
        transport.setOnUtilityMessageCallback(COPIES, self._on_copies)
        transport.setOnUtilityMessageCallback(STEP_DOWN, self._on_step_down)
        syncobj.addOnTickCallback(self._send_replies)

    def status(self) -> ClusterStatus:
        raft = self._raft
        now = self._clock_ms()
        with raft.reading() as state:
            timeout = state.session_timeout_ms()
            brokers = [
                BrokerEntry(b.node_id, b.host, b.port, b.raft_address, b.alive(now, timeout))
                for b in sorted(state.brokers.values(), key=lambda b: b.node_id)
            ]
            gaps = [asdict(g) for g in under_replicated(state.topics, state.counted_holders(now))]
        return ClusterStatus(raft.self_addr, raft.leader, raft.members, brokers, gaps,
                             self._local_copies())

    def _local_copies(self) -> list[dict[str, Any]]:
        try:
            return [{**c, "node_id": self._raft.node_id} for c in self.copies()]
        except RuntimeError:  # the copier's table changed under us: report none this time
            return []

    def _on_status(self, _args: list[Any], reply: Reply) -> None:  # tick thread
        reply({"ok": True, "status": self.status().to_dict()}, None)

    def _on_copies(self, _args: list[Any], reply: Reply) -> None:  # tick thread
        reply({"ok": True, "copies": self._local_copies()}, None)

    def _on_step_down(self, _args: list[Any], reply: Reply) -> None:  # tick thread
        # Best effort: the caller watches the leader change and asks again if need be.
        self._raft._syncobj.transferLeadership(callback=lambda *_: None)
        reply({"ok": True}, None)

    def _on_remove(self, args: list[Any], reply: Reply) -> None:  # tick thread
        try:
            node_id, address = int(args[0]), str(args[1])
        except (IndexError, TypeError, ValueError):
            reply({"ok": False, "error": "expected [node id, HOST:RAFTPORT]"}, None)
            return
        assert self._loop is not None
        key = (node_id, address)
        future = self._removals.get(key)
        if future is None:
            future = asyncio.run_coroutine_threadsafe(self.remove(node_id, address), self._loop)
            self._removals[key] = future
        if not future.done():
            reply({"ok": True, "state": RUNNING}, None)
            return
        # Reported once; asking again after that starts over, which finds it done.
        del self._removals[key]
        try:
            answer = {"ok": True, "state": DONE, "message": future.result()}
        except MembershipError as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply(answer, None)

    def _send_replies(self) -> None:  # tick thread
        with self._replies_lock:
            replies, self._replies = self._replies, []
        for send in replies:
            send()

    async def remove(self, node_id: int, address: str) -> str:
        """Take `address` out of the Raft group, then unregister broker `node_id`."""
        raft = self._raft
        if address == raft.self_addr:
            raise MembershipError(
                f"{address} cannot remove itself: send the request through another member"
            )
        with raft.reading() as state:
            broker = state.brokers.get(node_id)
            registered_at = broker.raft_address if broker is not None else None
        if registered_at is not None and registered_at != address:
            raise MembershipError(
                f"node {node_id} is registered with Raft address {registered_at}, not {address}"
            )
        steps = []
        if address in raft.members:
            # pysyncobj refuses a membership change while the group settles (a change or
            # an election still in progress), and a forwarded change whose leader is
            # replaced before it answers is never answered: ask again for a while, and
            # look each time whether an earlier attempt went through after all.
            deadline = time.monotonic() + REMOVE_RETRY_S
            while address in raft.members:
                if raft.leader == address:
                    await self._ask_to_step_down(address, self._raft.secret)
                else:
                    try:
                        await raft.remove_node(address, REMOVE_ATTEMPT_S)
                        break
                    except RaftError as exc:
                        log.warning("removing %s from Raft: %s (leader %s, term %d, members %s)",
                                    address, exc, raft.leader, raft.term, raft.members)
                        if time.monotonic() >= deadline:
                            raise MembershipError(
                                f"removing {address} from Raft failed: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise MembershipError(
                        f"{address} leads the Raft group and did not hand leadership over")
                await asyncio.sleep(0.5)
            steps.append(f"removed {address} from the Raft group")
        else:
            steps.append(f"{address} was not a Raft member")
        try:
            result = await raft.propose(UnregisterBroker(node_id))
        except RaftError as exc:
            raise MembershipError(f"unregistering broker {node_id} failed: {exc}") from exc
        if isinstance(result, Refusal) and result.error is not MetadataError.BROKER_ID_NOT_REGISTERED:
            raise MembershipError(f"unregistering broker {node_id} refused: {result}")
        steps.append(
            f"unregistered broker {node_id}" if not isinstance(result, Refusal)
            else f"broker {node_id} was not registered"
        )
        return "; ".join(steps)


    @staticmethod
    async def _ask_to_step_down(address: str, secret: str | None) -> None:
        # A leader that does not answer loses its leadership to an election anyway.
        with contextlib.suppress(MembershipError):
            await asyncio.to_thread(_call, address, [STEP_DOWN], 3.0, secret)


# ------------------------------------------------------------------ asking


def _call(via: str, message: list[Any], timeout: float, secret: str | None) -> Any:
    """One admin request; `secret` is the cluster secret, without which a member drops
    the connection unanswered."""
    try:
        answer = TcpUtility(password=secret, timeout=timeout).executeCommand(via, message)
    except UtilityException as exc:
        raise NoAnswer(
            f"no answer from the Raft port {via} ({exc}; a member drops a request made "
            "without this cluster's secret)"
        ) from None
    if answer is None:
        raise NoAnswer(
            f"no answer from the Raft port {via} (cannot connect, or the cluster secret "
            "is not this cluster's)"
        )
    return answer


def _walrus_answer(via: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        # pysyncobj answers an unknown request by closing, a failed one with text.
        raise MembershipError(f"{via} answered {answer!r}: is it a Walrus node's Raft port?")
    if not answer.get("ok"):
        raise MembershipError(str(answer.get("error", answer)))
    return answer


def fetch_status(via: str, timeout: float = 10.0, secret: str | None = None) -> ClusterStatus:
    answer = _walrus_answer(via, _call(via, [STATUS], timeout, secret))
    return ClusterStatus.from_dict(answer["status"])


def add_member(via: str, address: str, timeout: float = 30.0, secret: str | None = None) -> None:
    """Add `address` to the Raft group through the member at `via`; returns once the
    change is committed."""
    answer = _call(via, [ADD, address], timeout, secret)
    if not (isinstance(answer, str) and answer.startswith("SUCCESS")):
        raise MembershipError(
            f"adding {address} through {via} failed ({answer}); a change is refused while "
            "another is still in progress or the group has no majority"
        )


def remove_member(via: str, node_id: int, address: str, timeout: float = 60.0,
                  poll_s: float = 0.5, secret: str | None = None) -> str:
    """Remove a member through `via` and wait until it is done: the removal runs on the
    member and each short request, on its own connection, asks how far it got."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = _walrus_answer(via, _call(via, [REMOVE, node_id, address],
                                               min(10.0, max(1.0, deadline - time.monotonic())),
                                               secret))
            if answer.get("state") != RUNNING:
                return str(answer.get("message", ""))
            last = "still running"
        except NoAnswer as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise MembershipError(f"removing {address} did not finish in {timeout:.0f} s ({last})")
        time.sleep(poll_s)


def fetch_copies(via: str, timeout: float = 3.0, secret: str | None = None) -> list[dict[str, Any]]:
    """The sealed-segment copies the node at `via` is making."""
    answer = _walrus_answer(via, _call(via, [COPIES], timeout, secret))
    return list(answer.get("copies", []))
