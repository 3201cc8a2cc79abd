"""Cluster metadata: a deterministic state machine (ClusterState) ordered by Raft."""
