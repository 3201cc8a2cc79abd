"""Timing and durability settings of a MetadataRaft member."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RaftTuning:
    """Timing and durability knobs. The defaults favour latency of a single proposal
    (every OffsetCommit waits for one) over raw throughput; see docs/benchmarks.md."""

    # Leader heartbeat period; with batching off, entries are also sent immediately.
    append_entries_period_s: float = 0.05
    # Election timeout range; well above the period so a GIL-busy broker does not
    # trigger spurious elections. A node takes ClusterTuning's raft_election_timeout_*.
    election_timeout_min_s: float = 0.4
    election_timeout_max_s: float = 0.8
    # A group of one has no rival to split a vote with, and a leader never times itself
    # out, so its first election (what a one-node broker waits for at start) can be quick.
    single_member_election_timeout_s: tuple[float, float] = (0.2, 0.3)
    connection_timeout_s: float = 3.5
    connection_retry_s: float = 0.5
    # How long the tick thread sleeps when idle; proposals wake it through a pipe.
    tick_period_s: float = 0.05
    # Send every entry at once instead of waiting for the next heartbeat.
    send_immediately: bool = True
    # Durability: fsync the journal before a proposal is acknowledged on this node, and
    # on every node at least this often while the journal changes.
    fsync_on_ack: bool = True
    fsync_interval_s: float = 0.2
    log_compaction_min_entries: int = 5000
    log_compaction_min_time_s: float = 300.0
    propose_timeout_s: float = 10.0
    # Binding the Raft port: tries and the pause between them before giving up.
    bind_attempts: int = 3
    bind_retry_s: float = 0.5
    # While waiting for a majority at start, how often to log which members are silent.
    wait_log_interval_s: float = 5.0
