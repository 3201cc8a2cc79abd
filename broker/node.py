"""One Walrus node: Raft metadata, partition logs, the group coordinator and the Kafka
listener, started and stopped together.

A node alone is a Raft group of one: the same state machine and code path as a
cluster member, so a one-node deployment is not a different product.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from broker.background import Periodic
from broker.config import BrokerConfig
from broker.coordination.applied_view import AppliedMetadata, MetadataDelta
from broker.coordination.commands import (
    AllocateProducerIds,
    Command,
    RegisterBroker,
    SetClusterId,
)
from broker.coordination.errors import Refusal
from broker.coordination.liveness import BrokerHeartbeats
from broker.coordination.membership import MembershipAdmin
from broker.coordination.raft import MetadataRaft
from broker.coordination.raft_tuning import RaftTuning
from broker.coordination.results import ClusterIdSet, ProducerIdBlock
from broker.coordination.scram_credentials import upsert_for_password
from broker.coordination.state import ClusterState
from broker.coordination.topology_watch import TopologyWatch
from broker.groups import GroupConfig, GroupCoordinator
from broker.groups.raft_store import RaftOffsetStore
from broker.interbroker.client import PeerPool
from broker.interbroker.peer_api import PeerApi
from broker.leadership.leases import LeaseKeeper
from broker.leadership.readiness import LeadershipReadiness
from broker.leadership.rotation import Rotation
from broker.log import LogConfig, LogManager
from broker.partitions.manager import ReplicaManager
from broker.replication.failover import Failover
from broker.replication.fetcher import ReplicaFetcher
from broker.replication.isr import IsrMaintainer
from broker.replication.segment_copier import SegmentCopier
from broker.security import scram
from broker.security.authenticators import Authenticators
from broker.security.node_identity import NodeCredentials, derive_key
from broker.security.principal_mapping import principal_from_certificate
from broker.security.tls_reload import ReloadingContext
from broker.server.connection import ClientInfo
from broker.server.dispatch import Dispatcher
from broker.server.listener import KafkaServer
from broker.server.listener_specs import uses_tls
from broker.server.request_memory import RequestMemory
from broker.startup_checks import StartupError, load_cluster_secret

log = logging.getLogger("walrus.node")

# Topics whose effective configuration is kept between changes (topic_config).
TOPIC_CONFIG_CACHE = 10_000
# Metadata entries that change one partition's topology and no other's.
PARTITION_SCOPED_KINDS = frozenset({"roll_segment", "reassign_leader", "update_isr", "segment_copied"})


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def inter_broker_tls(config: BrokerConfig) -> ssl.SSLContext:
    """How this node connects to the others' TLS listener: it trusts ssl_cafile (the
    system's CAs without one) and shows its own certificate, should the peer ask."""
    from broker.security.tls import build_client_context, protocol_range

    if config.ssl_cafile is not None:
        return build_client_context(
            cafile=config.ssl_cafile, certfile=config.ssl_certfile, keyfile=config.ssl_keyfile,
            key_password=config.ssl_key_password, enabled_protocols=config.ssl_enabled_protocols)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version, context.maximum_version = protocol_range(config.ssl_enabled_protocols)
    if config.ssl_certfile is not None and config.ssl_keyfile is not None:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, config.ssl_key_password)
    return context


class ProducerIdAllocator:
    """Hands out producer ids from blocks reserved through Raft, so ids are unique
    across the cluster and across restarts."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._next = 0
        self._last = -1
        self._lock = asyncio.Lock()

    async def allocate(self) -> int:
        async with self._lock:
            if self._next > self._last:
                block = await self._node.propose(AllocateProducerIds(self._node.config.node_id))
                if not isinstance(block, ProducerIdBlock):
                    raise RuntimeError(f"producer id block refused: {block}")
                self._next, self._last = block.first_id, block.last_id
            pid = self._next
            self._next += 1
            return pid


class Node:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.tuning = config.cluster_tuning()
        # The applied metadata as this node's event loop reads it (no lock; see
        # coordination/applied_view.py). The Raft tick thread applies to a copy of its own.
        self.view = AppliedMetadata()
        self.raft: MetadataRaft | None = None
        self.replicas: ReplicaManager | None = None
        self.groups: GroupCoordinator | None = None
        self.producer_ids = ProducerIdAllocator(self)
        # One per listener; `server` is the first (the only one in most set-ups).
        self.servers: list[KafkaServer] = []
        self.server: KafkaServer | None = None
        self.dispatcher: Dispatcher | None = None
        self.cluster_id = ""
        self.heartbeats: BrokerHeartbeats | None = None
        self.peers = PeerPool()
        # Every request this node sends another (interbroker/peer_api.py).
        self.peer_api = PeerApi(self.peers, self.broker_address, config.node_id)
        # What this node proves itself with to the others (set at start).
        self.identity: NodeCredentials | None = None
        # The certificate of TLS listeners, and the task that reloads it when its files
        # change.
        self.tls: ReloadingContext | None = None
        self.tls_reload: Periodic | None = None
        # The server side of each client SASL mechanism (set at start).
        self.authenticators: Authenticators | None = None
        self.leases = LeaseKeeper(self.propose, config.node_id, self.tuning)
        self.rotation = Rotation(self)
        # Takes up the leadership the metadata gives this node as soon as it is applied.
        self.readiness = LeadershipReadiness(config.node_id, self.metadata, lambda: self.replicas,
                                             config.replica_lag_time_max_ms)
        self.readiness_check: Periodic | None = None
        self.topology = TopologyWatch()
        # topic -> (topology version, its effective configuration): topic_config.
        self._topic_configs: dict[str, tuple[int, Mapping[str, str]]] = {}
        self.fetcher = ReplicaFetcher(self)
        self.isr = IsrMaintainer(self)
        self.failover = Failover(self)
        self.copier = SegmentCopier(self)
        self.retention: Periodic | None = None
        self.group_ownership: Periodic | None = None
        # The live nodes when groups were last handed out (_follow_group_ownership).
        self._group_owners: tuple[int, ...] = ()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from broker.handlers import build_routes

        config = self.config
        data_dir = config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = self._load_cluster_id()

        raft_host, raft_port = config.raft or ("127.0.0.1", _free_loopback_port())
        self_addr = f"{raft_host}:{raft_port}"
        peers = [self_addr, *(f"{p.host}:{p.raft_port}" for p in config.peers)]
        secret = load_cluster_secret(config)
        self.identity = NodeCredentials(config.node_id, derive_key(secret))
        self.peers.credentials = self.identity
        if uses_tls(config.security_protocol(config.inter_broker_listener)):
            self.peers.ssl_context = inter_broker_tls(config)
        raft_tuning = RaftTuning(
            election_timeout_min_s=self.tuning.raft_election_timeout_min_ms / 1000,
            election_timeout_max_s=self.tuning.raft_election_timeout_max_ms / 1000)
        self.raft = MetadataRaft(config.node_id, self_addr, peers, data_dir, ClusterState(),
                                 raft_tuning, secret=secret)
        self.view.follow(self.raft)
        self.view.subscribe(self._on_metadata_applied)
        MembershipAdmin(self.raft, copies=self.copier.progress).install()
        ready_timeout = config.metadata_ready_timeout_ms / 1000
        await self.raft.wait_ready(timeout=ready_timeout)
        host, port = config.advertised
        endpoints = {name: list(address) for name, address in config.advertised_endpoints().items()}
        self.heartbeats = BrokerHeartbeats(
            self.raft,
            RegisterBroker(config.node_id, host, port, config.rack, self_addr, endpoints=endpoints,
                           session_timeout_ms=self.tuning.broker_session_timeout_ms or None),
            **({"interval_s": self.tuning.broker_heartbeat_interval_ms / 1000,
                "lease_ms": self.tuning.lease_ms, "on_lease": self.leases.node_lease_granted}
               if self.tuning.node_leases else {}),
        )
        await self.heartbeats.start(ready_timeout)
        chosen = await self.raft.propose_until_applied(SetClusterId(self.cluster_id), ready_timeout)
        if isinstance(chosen, ClusterIdSet):
            # Every node reports the id the first node chose, as Kafka clients expect.
            self.cluster_id = chosen.cluster_id
        log.info("metadata ready (raft %s, %d member(s))", self_addr, len(peers))

        logs = LogManager(
            str(data_dir / "logs"),
            LogConfig.from_topic_config(config.topic_defaults, LogConfig(io_backend=config.io_backend)),  # type: ignore[arg-type]
            config_for=self.log_config,
        )
        self.replicas = ReplicaManager(logs, self.log_config, self._sealed_ends, self._producers_at)
        self.replicas.open_existing(self._hosts_partition)
        self.replicas.reconcile()
        self.readiness.catch_up()

        self.groups = GroupCoordinator(
            RaftOffsetStore(self.raft, reading=self.view.reading),
            GroupConfig(
                initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
                min_session_timeout_ms=config.group_min_session_timeout_ms,
                max_session_timeout_ms=config.group_max_session_timeout_ms,
            ),
            owns=self._coordinates_group,
        )
        await self.groups.start()

        self.authenticators = Authenticators(config, self.state.scram_credential)
        if config.scram_credentials_file is not None:
            await self._create_scram_users(config.scram_credentials_file, ready_timeout)
        self.dispatcher = Dispatcher(build_routes(self), raw_sasl=self._raw_sasl_token)
        memory = RequestMemory(config.queued_max_request_bytes)
        for listener in config.bound_listeners:
            protocol = config.security_protocol(listener.name)
            tls = self._tls_context() if uses_tls(protocol) else None
            server = KafkaServer(
                self.dispatcher.handle_frame,
                host=listener.host,
                port=listener.port,
                max_request_bytes=config.max_request_bytes,
                idle_timeout_s=config.idle_timeout_ms / 1000,
                memory=memory,
                name=listener.name,
                security_protocol=protocol,
                ssl_context=tls.context if tls is not None else None,
                # On SSL listeners the client certificate names the principal; on
                # SASL_SSL the SASL exchange does, as in Kafka.
                on_secure=self._certificate_principal if protocol == "SSL" else None,
            )
            await server.start()
            self.servers.append(server)
        self.server = self.servers[0]
        if self.tls is not None:
            tls_files = self.tls

            async def reload_tls() -> None:
                tls_files.check()

            self.tls_reload = Periodic(
                "TLS file reload", config.ssl_reload_check_interval_ms / 1000, reload_tls)
            self.tls_reload.start()
        self.retention = Periodic(
            "log retention", config.retention_check_interval_ms / 1000, self._apply_retention
        )
        self.retention.start()
        self.group_ownership = Periodic(
            "group ownership", self.tuning.failover_check_interval_ms / 1000, self._follow_group_ownership)
        self.group_ownership.start()

        async def look_for_missed_steps() -> None:
            # Every apply and every installed snapshot is followed as it comes
            # (_on_metadata_applied). This slow sweep looks at every partition led here
            # anyway: a step left due would otherwise answer reads "not leader" until
            # the next write. None should be found.
            if missed := self.readiness.catch_up(look_anyway=True):
                log.warning("leadership of %d partition(s) was not taken up on its apply; taken now", missed)

        self.readiness_check = Periodic(
            "leadership readiness", 10 * self.tuning.failover_check_interval_ms / 1000,
            look_for_missed_steps)
        self.readiness_check.start()
        self.leases.start()
        self.fetcher.start()
        self.isr.start()
        self.failover.follow()
        self.failover.start()
        self.copier.start()
        log.info(
            "node %d serving Kafka clients on %s, data in %s", config.node_id,
            ", ".join(f"{s.name} {s.host}:{s.port} (advertised "
                      f"{config.advertised_listener(s.name).host}:"
                      f"{config.advertised_listener(s.name).port})" for s in self.servers),
            data_dir,
        )

    async def _create_scram_users(self, path: Path, timeout: float) -> None:
        """The users of the scram_credentials_file, each made (through Raft) unless it
        already has that password: a restart does not re-salt them, and a user whose
        password was changed through AlterUserScramCredentials keeps the new one only
        if the file no longer names it."""
        for user, mechanism, password in scram.parse_credentials_file(
                path.read_text(encoding="utf-8")):
            stored = self.state.scram_credential(user, mechanism)
            if stored is not None and scram.derive(
                    mechanism, password, stored.salt, stored.iterations).stored_key == stored.stored_key:
                continue
            assert self.raft is not None
            result = await self.raft.propose_until_applied(
                upsert_for_password(user, mechanism, password), timeout)
            if isinstance(result, Refusal):
                raise StartupError(f"scram_credentials_file {path}: user {user}: {result.message}")
            log.info("SCRAM user %s (%s) set from %s", user, mechanism, path)

    def _tls_context(self) -> ReloadingContext:
        # One context for every TLS listener: the same files, reloaded once.
        if self.tls is None:
            self.tls = ReloadingContext(self.config.tls_settings())
        return self.tls

    def _certificate_principal(self, client: ClientInfo, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        assert self.tls is not None
        client.principal = principal_from_certificate(certificate, self.tls.settings.principal_mapper)

    async def _raw_sasl_token(self, client: ClientInfo, token: bytes) -> bytes:
        from broker.handlers.sasl import raw_token

        return await raw_token(self, client, token)

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()
        if self.tls_reload is not None:
            await self.tls_reload.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.group_ownership is not None:
            await self.group_ownership.stop()
        if self.readiness_check is not None:
            await self.readiness_check.stop()
        if self.heartbeats is not None:
            await self.heartbeats.stop()
        await self.copier.stop()
        await self.failover.stop()
        await self.isr.stop()
        await self.fetcher.stop()
        await self.leases.stop()
        self.peers.close()
        if self.groups is not None:
            await self.groups.close()
        if self.replicas is not None:
            self.replicas.close()
        if self.raft is not None:
            self.raft.close()

    def _load_cluster_id(self) -> str:
        """This node's candidate cluster id, made once and kept in the data directory
        (Kafka's meta.properties); the metadata keeps the first one proposed."""
        path = self.config.data_dir / "cluster_id"
        if self.config.cluster_id:
            return self.config.cluster_id
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            # Kafka's cluster ids are URL-safe base64 of 16 random bytes.
            import base64

            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            path.write_text(cluster_id + "\n")
            return cluster_id

    # ------------------------------------------------------------------ metadata

    async def propose(self, command: Command, timeout: float | None = None) -> Any:
        assert self.raft is not None
        return await self.raft.propose(command, timeout)

    @property
    def state(self) -> ClusterState:
        """The applied metadata (this loop's copy): holds still until the next await."""
        return self.view.state

    def metadata(self) -> contextlib.AbstractContextManager[ClusterState]:
        """The applied metadata, held still until the reader's next await."""
        return self.view.reading()

    def broker_address(self, node_id: int) -> tuple[str, int] | None:
        """Where another node serves Kafka clients, from the metadata."""
        with self.metadata() as state:
            broker = state.brokers.get(node_id)
            return None if broker is None else (broker.host, broker.port)

    def topic_config(self, topic: str) -> Mapping[str, str]:
        """A topic's effective configuration: broker defaults, then cluster-wide
        overrides, then this broker's own overrides ("<node id>/<name>"), then the
        topic's own. Kept until the topology moves (every config change moves it):
        produce reads it for each batch."""
        mine = f"{self.node_id}/"
        with self.metadata() as state:
            version = state.topology_version
            cached = self._topic_configs.get(topic)
            if cached is not None and cached[0] == version:
                return cached[1]
            merged = dict(self.config.topic_defaults)
            merged.update({k: v for k, v in state.cluster_config.items() if "." in k and k in merged})
            merged.update({
                k[len(mine):]: v for k, v in state.cluster_config.items()
                if k.startswith(mine) and k[len(mine):] in merged
            })
            found = state.topic(topic)
            if found is not None:
                merged.update(found.config)
        if len(self._topic_configs) >= TOPIC_CONFIG_CACHE:
            self._topic_configs.clear()
        view = MappingProxyType(merged)
        self._topic_configs[topic] = (version, view)
        return view

    def log_config(self, topic: str) -> LogConfig:
        base = LogConfig(io_backend=self.config.io_backend)  # type: ignore[arg-type]
        return LogConfig.from_topic_config(self.topic_config(topic), base)

    def _sealed_ends(self, topic: str, partition: int) -> dict[int, int]:
        """epoch -> end offset of the partition's sealed segments, from the metadata."""
        with self.metadata() as state:
            found = state.partition(topic, partition)
            return {} if found is None else {
                s.epoch: s.end_offset for s in found.segments if s.end_offset is not None
            }

    def _producers_at(self, topic: str, partition: int, epoch: int, base_offset: int) -> list[Any] | None:
        """The producer state the segment of `epoch` starts from, from the metadata."""
        with self.metadata() as state:
            return state.producers_at(topic, partition, epoch, base_offset)

    def _hosts_partition(self, topic: str, partition: int) -> bool:
        with self.metadata() as state:
            found = state.partition(topic, partition)
            return found is not None and any(
                self.node_id in seg.replicas or seg.leader == self.node_id
                or self.node_id in seg.copying for seg in found.segments
            )

    def _on_metadata_applied(self, delta: MetadataDelta) -> None:
        if self.replicas is None:
            return
        kind, command = delta.kind, delta.command
        if kind in ("roll_segment", "reassign_leader"):
            self.rotation.on_applied(dict(command), delta.result)
        if kind == "delete_topic" and not delta.refused:
            name = command.get("name")
            if isinstance(name, str):
                self.replicas.delete_topic(name)
                log.info("deleted the logs of topic %s", name)
        elif kind in ("alter_topic_config", "alter_cluster_config") and not delta.refused:
            self.replicas.reconfigure(command.get("name") if kind == "alter_topic_config" else None)
        # Leadership this entry gave this node is taken up at once (until then a read
        # of the partition here is answered "not leader").
        self.readiness.catch_up(only=delta.scope if kind in PARTITION_SCOPED_KINDS else None)
        if self.topology.observe(delta.topology_version):
            # The replica fetcher re-reads what it follows, and followers' long polls
            # here end so they ask for it.
            self.fetcher.metadata_moved()

    # ------------------------------------------------------------------ background

    def _coordinates_group(self, group_id: str) -> bool:
        from broker.handlers.groups_coordinator import coordinates

        return coordinates(self, group_id)

    async def _follow_group_ownership(self) -> None:
        """When nodes come or go, groups move (rendezvous hashing over the live nodes):
        let go of the ones that left this node, take up the ones that came to it."""
        now = time.time_ns() // 1_000_000
        with self.metadata() as state:
            owners = tuple(sorted(b.node_id for b in state.live_brokers(now)))
        if owners == self._group_owners or self.groups is None:
            return
        self._group_owners = owners
        await self.groups.reconcile()

    async def _apply_retention(self) -> None:
        assert self.replicas is not None
        now = int(time.time() * 1000)
        deleted = await asyncio.to_thread(self.replicas.logs.apply_retention, now)
        if deleted:
            log.info("retention deleted %d segment file(s)", deleted)
