"""Which brokers this node tells clients about (Metadata, DescribeCluster,
FindCoordinator), including when its own metadata is known to be behind.

A broker is alive while its last heartbeat, as applied through Raft, is younger than
``broker.session.timeout.ms``. A node whose Raft log lags the cluster's (cut off from
the majority, or in the seconds after a partition heals while it catches up) judges
everyone by old heartbeats, so after a session timeout its view holds no live broker
at all. Answering clients from that view gives them an empty broker list and no
partition leaders: a client that bootstrapped from this node has nobody else to ask
and waits out its metadata back-off until the log catches up.

The rule: the view is stale when this node does not count *itself* alive. A node that
is answering a request is running and heartbeats every third of the session timeout,
so if its own last applied heartbeat has expired, its applied log is at least two
heartbeat intervals behind the cluster: it lacks every broker's recent heartbeats, not
only its own, and "not alive" in that view means "not heard of lately", not "dead".
Then clients are told every registered broker (this node included, registered or not),
as a Kafka broker with an old metadata cache tells its last-known brokers; whoever
really is down costs the client a failed connection and a refresh, which it does
anyway for stale metadata. Partition leaders are the last known ones, with their
epochs, so a client that has seen newer epochs elsewhere ignores them (KIP-320) -
except this node itself: it has missed at least a session timeout of the cluster's log,
so its write leases (shorter than that, renewed through Raft) have run out and the
majority may have moved its partitions; it names no leader for them and the client
asks again.

Conditions weaker than that (no Raft leader known during an election, one other
broker's heartbeat expired) leave the view as it is: there the node is current
enough, and the dead brokers it leaves out are the ones the cluster counts dead too.
This is only about what clients are told: the state machine's own decisions (failover,
rolls, placement, which node coordinates a group) keep using live brokers alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.coordination.model import Broker
from broker.coordination.placement import rendezvous_pick
from broker.coordination.state import ClusterState

if TYPE_CHECKING:
    from broker.node import Node


@dataclass(slots=True)
class ToldBrokers:
    brokers: list[Broker]  # by node id
    stale: bool  # this node's applied metadata is known to lag the cluster's
    self_id: int
    # Live brokers whose node lease has run out: they write nothing until a heartbeat
    # renews it, and a follower may be taking their segments over. Their partitions are
    # told without a leader, so clients look again soon (a client told of a leader it
    # cannot reach retries that leader and looks at the metadata far less often).
    unleased: frozenset[int] = frozenset()
    ids: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = frozenset(b.node_id for b in self.brokers)

    def on_listener(self, listener: str) -> ToldBrokers:
        """The same brokers as clients of `listener` reach them: each at that listener's
        advertised address, and those without such a listener left out, as Kafka does."""
        shown = []
        for broker in self.brokers:
            address = broker.address_for(listener)
            if address is not None:
                shown.append(dataclasses.replace(broker, host=address[0], port=address[1]))
        return ToldBrokers(shown, self.stale, self.self_id, self.unleased)

    def may_lead(self, node_id: int) -> bool:
        """Whether a partition led by `node_id` (by the metadata) is told with its leader."""
        return (node_id in self.ids and node_id not in self.unleased
                and not (self.stale and node_id == self.self_id))


def told_brokers(node: Node, state: ClusterState, now_ms: int) -> ToldBrokers:
    live = state.live_brokers(now_ms)
    if any(b.node_id == node.node_id for b in live):
        unleased = frozenset(b.node_id for b in live if 0 < b.lease_expiry_ms <= now_ms)
        if unleased and (judged := node.failover.lapses_judged(state)) is not None:
            # An election or a stall just now: every lease may have lapsed, and
            # telling no leaders for the whole cluster would fail clients' requests
            # that a moment later find every leader renewed.
            unleased &= judged
        return ToldBrokers(live, stale=False, self_id=node.node_id, unleased=unleased)
    known = dict(state.brokers)
    if node.node_id not in known:
        # Unregistered behind its back (it registers again with its next heartbeat):
        # it still answers on its own listener.
        config = node.config
        host, port = config.advertised
        known[node.node_id] = Broker(
            node_id=node.node_id, host=host, port=port, rack=config.rack,
            raft_address=None, registered_ms=0, last_heartbeat_ms=0, broker_epoch=-1,
            endpoints=config.advertised_endpoints(),
        )
    return ToldBrokers([known[n] for n in sorted(known)], stale=True, self_id=node.node_id)


def hash_pick(brokers: list[Broker], key: str) -> Broker | None:
    """The broker rendezvous hashing picks for `key` among `brokers`: every node computes
    the same answer from the same brokers, and a broker leaving moves only its own keys."""
    chosen = rendezvous_pick([b.node_id for b in brokers], key)
    return next((b for b in brokers if b.node_id == chosen), None)
