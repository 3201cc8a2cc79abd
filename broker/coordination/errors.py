"""Typed refusals of metadata commands.

A refused command is still a committed Raft entry: every node applies it and reaches the
same refusal, so a refusal is a value returned by ``apply``, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetadataError(StrEnum):
    """Why a command was refused. Kafka error-code names where one fits, so a handler can
    map the refusal straight onto the client's error code."""

    # Kafka error codes (by their protocol names)
    UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"
    TOPIC_ALREADY_EXISTS = "TOPIC_ALREADY_EXISTS"
    INVALID_TOPIC_EXCEPTION = "INVALID_TOPIC_EXCEPTION"
    INVALID_PARTITIONS = "INVALID_PARTITIONS"
    INVALID_REPLICATION_FACTOR = "INVALID_REPLICATION_FACTOR"
    INVALID_REPLICA_ASSIGNMENT = "INVALID_REPLICA_ASSIGNMENT"
    INVALID_CONFIG = "INVALID_CONFIG"
    INVALID_REQUEST = "INVALID_REQUEST"
    OFFSET_METADATA_TOO_LARGE = "OFFSET_METADATA_TOO_LARGE"
    FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
    UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"
    NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
    BROKER_NOT_AVAILABLE = "BROKER_NOT_AVAILABLE"
    BROKER_ID_NOT_REGISTERED = "BROKER_ID_NOT_REGISTERED"
    GROUP_ID_NOT_FOUND = "GROUP_ID_NOT_FOUND"
    ILLEGAL_GENERATION = "ILLEGAL_GENERATION"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    UNACCEPTABLE_CREDENTIAL = "UNACCEPTABLE_CREDENTIAL"
    UNSUPPORTED_SASL_MECHANISM = "UNSUPPORTED_SASL_MECHANISM"
    # Walrus-only conditions with no Kafka equivalent
    LEADER_STILL_ALIVE = "LEADER_STILL_ALIVE"
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"


@dataclass(slots=True, frozen=True)
class Refusal:
    """A command that was validated and not applied; the state is unchanged."""

    error: MetadataError
    message: str = ""
