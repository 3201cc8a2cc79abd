"""Segment data replication: followers pull the active segment from its leader, as
Kafka's followers do, and a dead leader's segment is sealed by an in-sync follower."""
