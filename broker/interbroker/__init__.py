"""Talking to other nodes of the cluster over the Kafka protocol itself: forwarding
produce requests to a partition's leader, and reading segments another node holds."""
