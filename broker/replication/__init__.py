"""Segment data replication: followers pull the active segment from its leader, as
Kafka's followers do, a dead leader's segment is sealed by an in-sync follower, and the
sealed segments a removed node held are copied to other nodes (segment_copier.py)."""
