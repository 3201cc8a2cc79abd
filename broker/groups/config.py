"""Settings of the group coordinator, named after the Kafka broker configs they mirror."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class GroupConfig:
    # group.initial.rebalance.delay.ms: how long the first rebalance of an empty group
    # waits for more members, so a fleet starting together forms one generation.
    initial_rebalance_delay_ms: int = 3000
    # group.min.session.timeout.ms / group.max.session.timeout.ms
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    # group.max.size
    max_group_size: int = 2**31 - 1
    # offset.metadata.max.bytes
    offset_metadata_max_bytes: int = 4096
    # A member whose JoinGroup is parked cannot heartbeat; a new member that vanishes
    # mid-rebalance is dropped after this long (Kafka's fixed 5 minutes).
    new_member_join_timeout_ms: int = 300_000
    # How long an Empty group without committed offsets stays listed before it is
    # forgotten (Kafka drops such groups at its periodic offsets cleanup).
    empty_group_retention_ms: int = 600_000
