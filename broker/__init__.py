"""Walrus: a distributed message-streaming broker that speaks the Kafka wire protocol."""

__version__ = "0.1.0"
