"""Produce: validate and append each partition's batch, answer when acks are met.

Partitions led by another node are forwarded to it over the Kafka protocol and its
answers relayed, so a client with stale metadata (or one that only knows this node)
still gets its records written by the right leader. A forwarded request is never
forwarded again: a stale leader answers NOT_LEADER_OR_FOLLOWER and the client
refreshes its metadata.

Batches of an idempotent producer are not forwarded; they are refused with
NOT_LEADER_OR_FOLLOWER, as Kafka refuses them. A forwarded batch is a second path to
the leader: the producer's next batch, sent straight to the new leader, can arrive
first, be refused as a sequence gap, and make the producer bump its epoch and send
again the forwarded batch it holds in doubt, which the leader then stores twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from broker.handlers.access import Leadership, local_leader
from broker.handlers.pacing import Pacer
from broker.handlers.produce_order import ProduceOrderGate, idempotent_header
from broker.handlers.produce_routing import Placement, route_produce, worth_placing_again
from broker.handlers.registry import Body, handles
from broker.interbroker.client import PeerUnavailable
from broker.partitions.replica import PartitionReplica, ProduceOutcome
from broker.protocol import Request
from broker.protocol.errors import ErrorCode
from broker.security.acl import AclOperation
from broker.security.checks import denied_topics
from broker.server.connection import ClientInfo

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

# How long a produce waits for leadership moving to or from this node to settle.
MOVING_WAIT_S = 5.0
# How long after leadership came here a sequence gap is answered "not leader": an old
# leader holds a batch up to MOVING_WAIT_S before it answers, and the client's retry
# follows.
GAP_AFTER_MOVE_S = MOVING_WAIT_S + 1.0
GAP_MESSAGE = "a sequence gap just after a leader change: send the earlier batch first"
# How long a produce keeps placing a partition whose leader answers "not leader".
PLACE_WITHIN_S = 3.0
PLACE_RETRY_S = 0.1
PartitionKey = tuple[str, int]


GATE_STATE = "produce_order"


def _order_gate(client: ClientInfo) -> ProduceOrderGate:
    gate = client.handler_state.get(GATE_STATE)
    if not isinstance(gate, ProduceOrderGate):
        gate = client.handler_state[GATE_STATE] = ProduceOrderGate()
    return gate


def _partition_response(index: int, outcome: ProduceOutcome) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": outcome.error,
        "base_offset": outcome.base_offset,
        "log_append_time_ms": outcome.log_append_time,
        "log_start_offset": outcome.log_start_offset,
        "record_errors": [],
        "error_message": outcome.message if outcome.error != ErrorCode.NONE else None,
    }


async def _forward(node: Node, leader: int, parts: dict[PartitionKey, Any], acks: int,
                   timeout_ms: int, connection_id: int) -> dict[PartitionKey, ProduceOutcome]:
    """Send `parts` to their leader as one Produce request; relay its answers."""
    try:
        answered = await node.peer_api.forward_produce(
            leader, parts,
            # An acks=0 client expects nothing back, but the forwarding node still needs
            # to know when its peer is done; acks=1 asks for exactly that.
            acks=1 if acks == 0 else acks, timeout_ms=timeout_ms,
            # The leader answers within the client's timeout; a little more covers the hop.
            timeout_s=min(max(timeout_ms, 1000), 30_000) / 1000 + 1,
            client_connection=connection_id)
    except PeerUnavailable as exc:
        log.info("forwarding produce to node %d failed: %s", leader, exc)
        if node.broker_address(leader) is None:
            return {key: ProduceOutcome(ErrorCode.NOT_LEADER_OR_FOLLOWER) for key in parts}
        # The leader may have written the batches before it failed or went quiet. "Not
        # leader" would tell the client they were not written; a timeout says "maybe
        # written", and the client retries.
        unknown = ProduceOutcome(ErrorCode.REQUEST_TIMED_OUT, message=f"forwarded to node {leader}: {exc}")
        return dict.fromkeys(parts, unknown)
    return {key: ProduceOutcome(p.error, p.base_offset, p.log_append_time_ms, p.log_start_offset,
                                p.error_message)
            for key, p in answered.items()}


async def _settled(node: Node, key: PartitionKey, leadership: Leadership) -> Leadership:
    """Leadership of `key` once a roll being proposed here, or the learning of producer
    state, is over (or MOVING_WAIT_S has passed). Refusing meanwhile would let the
    producer's next batches, already on their way, arrive first wherever the partition
    goes next: a sequence gap, which makes an idempotent producer bump its epoch and
    send again batches it had in doubt, written or not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MOVING_WAIT_S
    while (replica := leadership.replica) is not None and replica.moving:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        # Woken when the roll's outcome is applied or the learning ends; leadership
        # may have moved meanwhile, so it is looked up again.
        await replica.wait_until_settled(remaining)
        leadership = local_leader(node, *key, to_write=True)
    return leadership


async def _append_locally(node: Node, key: PartitionKey, leadership: Leadership, records: Any,
                          acks: int, timeout_ms: int, received_at: float) -> ProduceOutcome:
    assert leadership.replica is not None
    # The records are checked before the write lease is taken: the check of a large
    # batch yields to the loop for a while, and the lease must still hold at the write.
    checked = await leadership.replica.check(records)
    if isinstance(checked, ProduceOutcome):
        return checked
    leadership = await _settled(node, key, leadership)
    replica = leadership.replica
    if replica is None:
        # Leadership moved while this waited: the caller places it again.
        return ProduceOutcome(leadership.error, message="leadership moved")
    if not await node.leases.acquire(replica.topic, replica.partition, leadership.epoch):
        # Cut off from the metadata majority, or leadership moved: write nothing.
        return ProduceOutcome(ErrorCode.NOT_LEADER_OR_FOLLOWER, message="no write lease")
    tracker = replica.tracker
    min_in_sync = 1
    if acks == -1 and tracker is not None:
        min_in_sync = int(node.topic_config(replica.topic).get("min.insync.replicas", "1"))
        if len(tracker.in_sync) < min_in_sync:
            return ProduceOutcome(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                message=f"{len(tracker.in_sync)} in-sync replicas, min.insync.replicas is {min_in_sync}",
            )
    outcome = await replica.append(checked, epoch=leadership.epoch)
    if (outcome.error == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
            and _moved_here_lately(node, replica, leadership, received_at)):
        # Just after leadership came here from another node, a gap is most likely the
        # producer's earlier batch still on its way back from the old leader, which
        # refused it as not the leader (librdkafka sends the next batch here while that
        # answer is in flight). "Out of order" makes librdkafka bump its epoch and send
        # again, as new, every batch it holds in doubt: duplicates. "Not leader" (not
        # written, retriable) makes it resend both, in order.
        log.info("%s-%d: %s; the batch came %.1fs after leadership moved here, so answered as not leader",
                 *key, outcome.message, received_at - replica.segment_started_ms / 1000)
        return ProduceOutcome(ErrorCode.NOT_LEADER_OR_FOLLOWER, message=GAP_MESSAGE)
    if outcome.error != ErrorCode.NONE:
        return outcome
    node.rotation.after_append(replica, leadership.epoch, leadership.segment_base)
    if acks == -1 and tracker is not None:
        # acks=all: answer once every in-sync replica holds the batch.
        if not await replica.wait_for_high_watermark(outcome.next_offset, max(timeout_ms, 0) / 1000):
            return ProduceOutcome(ErrorCode.REQUEST_TIMED_OUT, message="in-sync replicas did not confirm in time")
        if len(tracker.in_sync) < min_in_sync:
            outcome.error = ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    return outcome


def _moved_here_lately(node: Node, replica: PartitionReplica, leadership: Leadership,
                       received_at: float) -> bool:
    """Whether the batch arrived (`received_at`, monotonic) less than GAP_AFTER_MOVE_S
    after this node began leading the partition's active segment, taking it over from
    another node. Arrival, not now: the batch may have waited here for the move to
    settle, and the race is with the client's retry of the batch before it."""
    if received_at - replica.segment_started_ms / 1000 > GAP_AFTER_MOVE_S:
        return False
    with node.metadata() as state:
        found = state.partition(replica.topic, replica.partition)
        segments = found.segments if found is not None else []
        previous = [s for s in segments if s.epoch < leadership.epoch]
        return bool(previous) and previous[-1].leader != node.node_id


async def _place(node: Node, parts: dict[PartitionKey, Any], acks: int, timeout_ms: int,
                 may_forward: bool, connection_id: int, received_at: float) -> dict[PartitionKey, tuple[ProduceOutcome, int]]:
    """Write each partition here or forward it to its leader: (outcome, the leader it
    went to) per partition."""
    out: dict[PartitionKey, tuple[ProduceOutcome, int]] = {}
    local: dict[PartitionKey, Any] = {}
    remote: dict[int, dict[PartitionKey, Any]] = {}
    pacer = Pacer()
    for key, records in parts.items():
        await pacer.pause_if_due()
        leadership = local_leader(node, *key, to_write=True)
        route = route_produce(node.node_id, leadership.leader_id, leadership.error, may_forward=may_forward,
                              idempotent=idempotent_header(records) is not None)
        if route.placement is Placement.HERE:
            local[key] = _append_locally(node, key, leadership, records, acks, timeout_ms, received_at)
        elif route.placement is Placement.FORWARD:
            remote.setdefault(route.leader, {})[key] = records
        else:
            out[key] = (ProduceOutcome(route.error), route.leader)
    local_results = await asyncio.gather(*local.values())
    out.update((key, (result, node.node_id)) for key, result in zip(local, local_results, strict=True))
    leaders = list(remote)
    forwarded = await asyncio.gather(
        *(_forward(node, leader, remote[leader], acks, timeout_ms, connection_id) for leader in leaders))
    for leader, results in zip(leaders, forwarded, strict=True):
        out.update((key, (result, leader)) for key, result in results.items())
    return out


def _place_again(node: Node, key: PartitionKey, records: Any, may_forward: bool) -> bool:
    return worth_placing_again(node.node_id, local_leader(node, *key, to_write=False).leader_id,
                               may_forward=may_forward, idempotent=idempotent_header(records) is not None)


@handles("Produce")
async def produce(node: Node, client: ClientInfo, request: Request) -> Body | None:
    body = request.body
    acks = body.acks
    may_forward = node.config.forward_requests and client.node_id is None
    order: list[PartitionKey] = []
    outcomes: dict[PartitionKey, ProduceOutcome] = {}
    placing: dict[PartitionKey, Any] = {}
    denied = denied_topics(node, client, request, AclOperation.WRITE, (t.name for t in body.topic_data))
    pacer = Pacer()
    for topic_data in body.topic_data:
        for p in topic_data.partition_data:
            await pacer.pause_if_due()
            key = (topic_data.name, p.index)
            order.append(key)
            if key[0] in denied:
                outcomes[key] = ProduceOutcome(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            elif acks not in (-1, 0, 1):
                outcomes[key] = ProduceOutcome(ErrorCode.INVALID_REQUIRED_ACKS)
            elif p.records is None or len(p.records) == 0:
                outcomes[key] = ProduceOutcome(ErrorCode.INVALID_RECORD, message="no records")
            else:
                placing[key] = p.records
    gate = client.handler_state.get(GATE_STATE)
    if gate and acks != 0:
        # Later batches of a producer whose earlier batch failed on this connection
        # wait for its retry (produce_order says why).
        assert isinstance(gate, ProduceOrderGate)
        gate.forget_older_than(client.received_at)
        for key in list(placing):
            header = idempotent_header(placing[key])
            error = None if header is None else gate.refusal(*key, header, client.received_at)
            if error is not None:
                assert header is not None
                log.info("%s-%d: producer %d sequence %d held back: an earlier batch failed here (%s)",
                         *key, header.producer_id, header.base_sequence, error.name)
                del placing[key]
                outcomes[key] = ProduceOutcome(
                    error, message="an earlier batch of this producer failed here; send it again first")
    parts_sent = dict(placing)
    loop = asyncio.get_running_loop()
    # A forwarded request waits less: the node that forwarded it places it again too.
    within = PLACE_WITHIN_S if may_forward else PLACE_WITHIN_S / 3
    deadline = loop.time() + min(max(body.timeout_ms, 0) / 1000, within)
    while placing:
        placed = await _place(node, placing, acks, body.timeout_ms, may_forward, client.connection_id,
                              client.received_at or time.monotonic())
        outcomes.update((key, outcome) for key, (outcome, _) in placed.items())
        # "Not leader" for a partition the metadata still gives a leader is placed again
        # shortly (leadership changed while this node waited or forwarded, or the new
        # leader has not applied its promotion yet), rather than answered: the
        # producer's later batches, already on their way, would get there first.
        placing = {key: placing[key] for key, (outcome, _) in placed.items()
                   if outcome.error == ErrorCode.NOT_LEADER_OR_FOLLOWER and outcome.message != GAP_MESSAGE
                   and _place_again(node, key, placing[key], may_forward)}
        if not placing or loop.time() + PLACE_RETRY_S > deadline:
            break
        await asyncio.sleep(PLACE_RETRY_S)

    if acks != 0:
        for key, outcome in outcomes.items():
            await pacer.pause_if_due()
            if outcome.error.retriable and key in parts_sent:
                header = idempotent_header(parts_sent[key])
                if header is not None:
                    _order_gate(client).failed(*key, header, outcome.error)
    if acks == 0:
        # Kafka sends nothing back to an acks=0 producer, errors included.
        return None
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, index in order:
        await pacer.pause_if_due()
        by_topic.setdefault(topic, []).append(_partition_response(index, outcomes[(topic, index)]))
    return {
        "responses": [{"name": name, "partition_responses": parts} for name, parts in by_topic.items()],
        "throttle_time_ms": 0,
    }
