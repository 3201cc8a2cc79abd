"""The timings of leases, failover and replication, in one place.

Every node of a cluster should run with the same values: a lease is granted in the
metadata for `lease_ms`, and the other nodes wait that long before they take a dead
leader's segment over. The defaults suit production; tests that wait out a failover
set shorter ones (WALRUS_LEASE_MS and friends, see docs/operations.md) instead of
waiting out production timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass


class TuningError(ValueError):
    """Timings that cannot work together."""


@dataclass(frozen=True, slots=True)
class ClusterTuning:
    # Node leases (leadership/leases.py): every heartbeat, sent each
    # broker_heartbeat_interval_ms, renews a lease on all the segments the node leads,
    # and a leader whose lease lapsed is replaced without waiting out the session
    # timeout. Off, a leader renews a lease per partition it writes (RenewLease) and a
    # dead one is replaced after the session timeout.
    node_leases: bool = True
    # How long a granted lease lets its leader write without renewing it. With node
    # leases, a dead leader's segments move about this long after its last heartbeat:
    # the failover time, measured in docs/benchmarks.md (replication).
    lease_ms: int = 1000
    # How often a node heartbeats when it takes node leases (without them: a third of
    # its session timeout). Four beats per lease: three can be late or lost.
    broker_heartbeat_interval_ms: int = 250
    # How often a leader renews the segment leases of partitions it wrote recently
    # (while it holds no node lease).
    lease_renew_interval_ms: int = 500
    # Writes stop this long before the lease's deadline: room for clock skew between
    # nodes and for a write that started just before it.
    lease_safety_margin_ms: int = 300
    # The failover is woken by metadata changes and lease deadlines, not by this; it is
    # how soon a follower tries again after a seal it could not make (a proposal that
    # failed), how often group ownership is checked, and a tenth of the interval of the
    # leadership sweep that should never find anything.
    failover_check_interval_ms: int = 100
    # How often the replica fetcher re-reads which segments this node follows.
    follower_refresh_interval_ms: int = 200
    # How often a leader re-checks which followers are in sync.
    in_sync_check_interval_ms: int = 250
    # How long after its last heartbeat this node still counts as alive: registered in
    # the metadata with the node, which heartbeats at a third of it. 0: the cluster's
    # broker.session.timeout.ms (9 s).
    broker_session_timeout_ms: int = 0
    # How long a metadata Raft member waits without hearing from the Raft leader before
    # it stands for election (a random time between the two). A dead Raft leader is
    # replaced about this long after it died, and the failover of the partitions it led
    # waits for that. The leader sends every 50 ms, so even the low end is eight missed
    # sends; measured under the replication bench's load: no election but the killed
    # leaders' (docs/benchmarks.md, replication).
    raft_election_timeout_min_ms: int = 400
    raft_election_timeout_max_ms: int = 800

    def __post_init__(self) -> None:
        for name in ("lease_ms", "lease_renew_interval_ms", "broker_heartbeat_interval_ms",
                     "failover_check_interval_ms",
                     "follower_refresh_interval_ms", "in_sync_check_interval_ms"):
            if getattr(self, name) <= 0:
                raise TuningError(f"{name} must be positive, not {getattr(self, name)}")
        if self.broker_session_timeout_ms != 0 and not 100 <= self.broker_session_timeout_ms <= 3_600_000:
            raise TuningError("broker_session_timeout_ms must be 0 (the cluster's "
                              "broker.session.timeout.ms) or from 100 to 3600000")
        if not 200 <= self.raft_election_timeout_min_ms < self.raft_election_timeout_max_ms:
            raise TuningError("raft_election_timeout_min_ms must be at least 200 and below "
                              "raft_election_timeout_max_ms (the random spread is what "
                              "keeps two members from standing at once)")
        if self.lease_safety_margin_ms < 0:
            raise TuningError("lease_safety_margin_ms must not be negative")
        if self.lease_safety_margin_ms >= self.lease_ms:
            raise TuningError("lease_safety_margin_ms must be below lease_ms: a lease "
                              "would end before it began")
        checked = ("lease_renew_interval_ms", "broker_heartbeat_interval_ms") if self.node_leases else (
            "lease_renew_interval_ms",)
        for name in checked:
            if getattr(self, name) >= self.lease_ms - self.lease_safety_margin_ms:
                raise TuningError(f"{name} must be below lease_ms minus "
                                  "lease_safety_margin_ms, or a busy leader's lease lapses "
                                  "between renewals")

    @property
    def active_window_ms(self) -> int:
        """A partition written within this window keeps its lease renewed."""
        return 2 * self.lease_ms
