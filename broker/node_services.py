"""What the replication and leadership services use of the node they run in.

Failover, the replica fetcher, the in-sync set upkeep, the segment copier and segment
rotation are built by `Node` (the composition root) and receive it typed as this
protocol: the node's identity and timings, its replicas, the applied metadata, Raft
proposals and the peer API. They cannot reach the node's servers, handlers, group
coordinator or security, and nothing here imports `broker.node`, so these packages sit
below it in the import graph (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from broker.cluster_tuning import ClusterTuning
    from broker.config import BrokerConfig
    from broker.coordination.applied_view import AppliedMetadata
    from broker.coordination.commands import Command
    from broker.coordination.raft import MetadataRaft
    from broker.coordination.state import ClusterState
    from broker.interbroker.peer_api import PeerApi
    from broker.leadership.leases import LeaseKeeper
    from broker.log import LogConfig
    from broker.partitions.manager import ReplicaManager


class NodeServices(Protocol):
    node_id: int
    config: BrokerConfig
    tuning: ClusterTuning
    # None until the node has opened its logs (start-up): services start after that.
    replicas: ReplicaManager | None
    raft: MetadataRaft | None
    view: AppliedMetadata
    peer_api: PeerApi
    leases: LeaseKeeper

    def metadata(self) -> AbstractContextManager[ClusterState]: ...

    async def propose(self, command: Command, timeout: float | None = None) -> Any: ...

    def broker_address(self, node_id: int) -> tuple[str, int] | None: ...

    def topic_config(self, topic: str) -> Mapping[str, str]: ...

    def log_config(self, topic: str) -> LogConfig: ...
