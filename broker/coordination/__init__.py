"""Cluster metadata: a deterministic state machine ordered by Raft.

``ClusterState`` (state.py) holds brokers, topics with their segment chains and leases,
committed offsets and producer-id blocks; it changes only through ``apply(command,
now_ms)`` with commands from commands.py, and answers with records from results.py or a
typed ``Refusal``. ``MetadataRaft`` (raft.py; its errors in raft_errors.py, its settings
in raft_tuning.py) replicates it with pysyncobj; nothing else in the broker imports
pysyncobj. ``BrokerHeartbeats`` (liveness.py) keeps a broker registered and alive in it.

Durability. pysyncobj writes its journal through an mmap that it never flushes. Walrus
fsyncs the journal, its term/vote/commit-index file and the directory on pysyncobj's
tick thread: before a proposal made on this node is acknowledged (one fsync covers every
entry applied in the same tick), and on every member at least every
``RaftTuning.fsync_interval_s`` (0.2 s) while the journal changes. What that promises:

- an acknowledged command survives kill -9 of any or all members (the journal's pages
  are in the page cache the moment they are written);
- in a group of one it also survives power loss: the journal is on disk before the
  proposer hears "done";
- in a larger group the acknowledging member has it on disk and a majority has it at
  least in memory; a power loss that takes down a majority at once can lose what they
  received in the last fsync interval.

``RaftTuning(fsync_on_ack=False)`` removes the fsync from the acknowledgement path (a
proposal in a group of one then takes ~0.1 ms instead of ~0.4 ms) and keeps only the
process-crash promise plus the interval fsync.
"""

from .commands import Command, command_from_dict, command_to_dict
from .errors import MetadataError, Refusal
from .liveness import BrokerHeartbeats
from .raft import MetadataRaft
from .raft_errors import (
    NotLeaderError,
    ProposalDiscarded,
    ProposalOutcomeUnknown,
    RaftBindError,
    RaftError,
    RaftUnavailable,
)
from .raft_tuning import RaftTuning
from .state import ClusterState

__all__ = [
    "BrokerHeartbeats",
    "ClusterState",
    "Command",
    "MetadataError",
    "MetadataRaft",
    "NotLeaderError",
    "ProposalDiscarded",
    "ProposalOutcomeUnknown",
    "RaftBindError",
    "RaftError",
    "RaftTuning",
    "RaftUnavailable",
    "Refusal",
    "command_from_dict",
    "command_to_dict",
]
