"""Cluster membership while the cluster runs: the admin protocol of a node's Raft port.

pysyncobj answers small admin requests on the Raft port itself (what its
``syncobj_admin`` utility sends: ``["status"]``, ``["add", "HOST:PORT"]``,
``["remove", "HOST:PORT"]``). Walrus adds two of its own on the same port, so an
operator needs no Kafka listener and no extra port:

- ``walrus_status``: the members, the Raft leader and the registered brokers, as one
  dict;
- ``walrus_remove``: remove a member from Raft, then unregister its broker through Raft
  (UnregisterBroker), so Metadata stops listing it and rotation stops choosing it.

Adding a member is pysyncobj's own ``add``: a broker registers itself when it starts.

Threading: admin requests arrive on pysyncobj's tick thread. Status is read there under
the metadata lock; removal is two proposals, which run on the broker's event loop, and
its reply goes back through the tick thread (the admin connection belongs to it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysyncobj.utility import TcpUtility, UtilityException

from .commands import UnregisterBroker
from .errors import MetadataError, Refusal
from .raft import MetadataRaft
from .raft_errors import RaftError

STATUS = "walrus_status"
REMOVE = "walrus_remove"
ADD = "add"  # pysyncobj's own

Reply = Callable[[Any, Any], None]


class MembershipError(Exception):
    """An admin request that could not be made or was refused, with the reason."""


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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterStatus:
        return cls(d["via"], d["leader"], list(d["members"]),
                   [BrokerEntry(**b) for b in d["brokers"]])


# ------------------------------------------------------------------ serving


REMOVE_RETRY_S = 15.0


class MembershipAdmin:
    """Serves the Walrus admin requests on one member's Raft port."""

    def __init__(self, raft: MetadataRaft, clock_ms: Callable[[], int] | None = None) -> None:
        self._raft = raft
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replies_lock = threading.Lock()
        self._replies: list[Callable[[], None]] = []

    def install(self) -> None:
        """Register the requests; call on the event loop that owns the node."""
        self._loop = asyncio.get_running_loop()
        syncobj = self._raft._syncobj
        # pysyncobj keeps its transport private; its admin hook is on the transport.
        transport = syncobj._SyncObj__transport
        transport.setOnUtilityMessageCallback(STATUS, self._on_status)
        transport.setOnUtilityMessageCallback(REMOVE, self._on_remove)
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
        return ClusterStatus(raft.self_addr, raft.leader, raft.members, brokers)

    def _on_status(self, _args: list[Any], reply: Reply) -> None:  # tick thread
        reply({"ok": True, "status": self.status().to_dict()}, None)

    def _on_remove(self, args: list[Any], reply: Reply) -> None:  # tick thread
        try:
            node_id, address = int(args[0]), str(args[1])
        except (IndexError, TypeError, ValueError):
            reply({"ok": False, "error": "expected [node id, HOST:RAFTPORT]"}, None)
            return
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.remove(node_id, address), self._loop)

        def done(f: Any) -> None:
            try:
                answer = {"ok": True, "message": f.result()}
            except MembershipError as exc:
                answer = {"ok": False, "error": str(exc)}
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            with self._replies_lock:
                self._replies.append(lambda: reply(answer, None))
            self._raft._wake()

        future.add_done_callback(done)

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
            # an election still in progress): ask again for a while before giving up.
            deadline = time.monotonic() + REMOVE_RETRY_S
            while True:
                try:
                    await raft.remove_node(address)
                    break
                except RaftError as exc:
                    if time.monotonic() >= deadline:
                        raise MembershipError(f"removing {address} from Raft failed: {exc}") from exc
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


# ------------------------------------------------------------------ asking


def _call(via: str, message: list[Any], timeout: float) -> Any:
    try:
        answer = TcpUtility(timeout=timeout).executeCommand(via, message)
    except UtilityException as exc:
        raise MembershipError(f"no answer from the Raft port {via} ({exc})") from None
    if answer is None:
        raise MembershipError(f"no answer from the Raft port {via} (cannot connect)")
    return answer


def _walrus_answer(via: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        # pysyncobj answers an unknown request by closing, a failed one with text.
        raise MembershipError(f"{via} answered {answer!r}: is it a Walrus node's Raft port?")
    if not answer.get("ok"):
        raise MembershipError(str(answer.get("error", answer)))
    return answer


def fetch_status(via: str, timeout: float = 10.0) -> ClusterStatus:
    answer = _walrus_answer(via, _call(via, [STATUS], timeout))
    return ClusterStatus.from_dict(answer["status"])


def add_member(via: str, address: str, timeout: float = 30.0) -> None:
    """Add `address` to the Raft group through the member at `via`; returns once the
    change is committed."""
    answer = _call(via, [ADD, address], timeout)
    if not (isinstance(answer, str) and answer.startswith("SUCCESS")):
        raise MembershipError(
            f"adding {address} through {via} failed ({answer}); a change is refused while "
            "another is still in progress or the group has no majority"
        )


def remove_member(via: str, node_id: int, address: str, timeout: float = 30.0) -> str:
    answer = _walrus_answer(via, _call(via, [REMOVE, node_id, address], timeout))
    return str(answer["message"])
