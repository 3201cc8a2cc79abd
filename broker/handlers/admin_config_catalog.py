"""The topic and broker configs Walrus honours: their types, documentation, checks,
and where each effective value comes from (Kafka's config sources).

A topic config is resolved, most specific first, from the topic's own override, this
broker's dynamic override (AlterConfigs on the broker resource "<node id>"), the
cluster-wide dynamic default (the broker resource ""), the broker's static
configuration, and Kafka's default. Broker resources speak Kafka's broker names
(``log.retention.ms``); in the metadata a broker-level value is kept under the topic
name (``retention.ms``, or ``1/retention.ms`` for broker 1 alone), which is what
Node.topic_config merges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from broker.config import DEFAULT_TOPIC_CONFIG
from broker.log import LogConfig

if TYPE_CHECKING:
    from broker.node import Node

_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MAX = (1 << 31) - 1


class ResourceType(IntEnum):
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


class ConfigSource(IntEnum):
    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ConfigType(IntEnum):
    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7


Check = Callable[[str], str | None]  # value -> why it is refused, or None


def _integer(low: int, high: int) -> Check:
    def check(value: str) -> str | None:
        try:
            number = int(value.strip())
        except ValueError:
            return f"{value!r} is not an integer"
        if not low <= number <= high:
            return f"{number} is outside [{low}, {high}]"
        return None

    return check


def _one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else f"{value!r} is not one of {', '.join(allowed)}"

    return check


def _cleanup_policy(value: str) -> str | None:
    policies = [p.strip() for p in value.split(",") if p.strip()]
    if "compact" in policies:
        return "log compaction is not supported by Walrus: cleanup.policy must be 'delete'"
    if policies != ["delete"]:
        return f"cleanup.policy must be 'delete', not {value!r}"
    return None


def _ratio(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    return None if 0.0 <= number <= 1.0 else f"{number} is outside [0, 1]"


def _boolean(value: str) -> str | None:
    return None if value.lower() in ("true", "false") else f"{value!r} is not true or false"


@dataclass(frozen=True, slots=True)
class TopicConfigDef:
    name: str
    broker_name: str  # the broker-level config that supplies its default in Kafka
    config_type: ConfigType
    check: Check
    doc: str


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in (
        TopicConfigDef("cleanup.policy", "log.cleanup.policy", ConfigType.LIST, _cleanup_policy,
                       "What happens to old segments: only 'delete' (retention) is supported."),
        TopicConfigDef("retention.ms", "log.retention.ms", ConfigType.LONG, _integer(-1, _LONG_MAX),
                       "How long a sealed segment is kept after its newest record; -1 keeps it forever."),
        TopicConfigDef("retention.bytes", "log.retention.bytes", ConfigType.LONG, _integer(-1, _LONG_MAX),
                       "Largest size a partition may grow to before its oldest segments go; -1 for no limit."),
        TopicConfigDef("segment.bytes", "log.segment.bytes", ConfigType.INT, _integer(1024, _INT_MAX),
                       "Size at which a partition's active segment file is rolled."),
        TopicConfigDef("segment.ms", "log.roll.ms", ConfigType.LONG, _integer(1, _LONG_MAX),
                       "Age at which a partition's active segment file is rolled."),
        TopicConfigDef("segment.entries", "log.segment.entries", ConfigType.LONG,
                       _integer(-1, _LONG_MAX),
                       "Records after which a cluster rolls the active segment over to the next "
                       "node (Walrus); -1 for no limit."),
        TopicConfigDef("segment.index.bytes", "log.index.size.max.bytes", ConfigType.INT,
                       _integer(4, _INT_MAX), "Largest size of a segment's offset index."),
        TopicConfigDef("max.message.bytes", "message.max.bytes", ConfigType.INT, _integer(0, _INT_MAX),
                       "Largest record batch a producer may append."),
        TopicConfigDef("message.timestamp.type", "log.message.timestamp.type", ConfigType.STRING,
                       _one_of("CreateTime", "LogAppendTime"),
                       "Whether records keep the producer's timestamp or take the append time."),
        TopicConfigDef("flush.messages", "log.flush.interval.messages", ConfigType.LONG,
                       _integer(1, _LONG_MAX), "Records appended between forced fsyncs."),
        TopicConfigDef("flush.ms", "log.flush.interval.ms", ConfigType.LONG, _integer(0, _LONG_MAX),
                       "Longest time appended records wait for a forced fsync."),
        TopicConfigDef("compression.type", "compression.type", ConfigType.STRING,
                       _one_of("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
                       "Accepted and stored; Walrus keeps every batch as its producer "
                       "compressed it (Kafka's 'producer')."),
        TopicConfigDef("message.format.version", "log.message.format.version", ConfigType.STRING,
                       lambda value: None,
                       "Deprecated in Kafka 3 and ignored: batches are always format v2."),
        # Kafka configs of features Walrus does not have (compaction, tiered storage,
        # throttles): accepted and stored so that applications setting them keep working,
        # and described as set; they change nothing.
        *(TopicConfigDef(name, broker_name, ctype, check, f"Accepted for compatibility; no effect in Walrus. ({doc})")
          for name, broker_name, ctype, check, doc in (
              ("delete.retention.ms", "log.cleaner.delete.retention.ms", ConfigType.LONG,
               _integer(0, _LONG_MAX), "compaction tombstone retention"),
              ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", ConfigType.LONG,
               _integer(0, _LONG_MAX), "compaction"),
              ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", ConfigType.LONG,
               _integer(1, _LONG_MAX), "compaction"),
              ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", ConfigType.DOUBLE,
               _ratio, "compaction"),
              ("file.delete.delay.ms", "log.segment.delete.delay.ms", ConfigType.LONG,
               _integer(0, _LONG_MAX), "delayed file deletion"),
              ("preallocate", "log.preallocate", ConfigType.BOOLEAN, _boolean, "file preallocation"),
              ("unclean.leader.election.enable", "unclean.leader.election.enable",
               ConfigType.BOOLEAN, _boolean, "Walrus never elects an out-of-sync leader"),
              ("message.downconversion.enable", "log.message.downconversion.enable",
               ConfigType.BOOLEAN, _boolean, "old fetch versions are not down-converted"),
              ("segment.jitter.ms", "log.roll.jitter.ms", ConfigType.LONG,
               _integer(0, _LONG_MAX), "roll jitter"),
              ("message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms",
               ConfigType.LONG, _integer(0, _LONG_MAX), "timestamp checks"),
              ("follower.replication.throttled.replicas", "follower.replication.throttled.replicas",
               ConfigType.LIST, lambda value: None, "replication throttles"),
              ("leader.replication.throttled.replicas", "leader.replication.throttled.replicas",
               ConfigType.LIST, lambda value: None, "replication throttles"),
          )),
        TopicConfigDef("min.insync.replicas", "min.insync.replicas", ConfigType.INT,
                       _integer(1, _INT_MAX), "Replicas that must hold a record for acks=all (stored)."),
    )
}

BROKER_TO_TOPIC: dict[str, str] = {d.broker_name: d.name for d in TOPIC_CONFIGS.values()}


@dataclass(frozen=True, slots=True)
class BrokerOnlyDef:
    name: str
    config_type: ConfigType
    check: Check
    read_only: bool
    doc: str


BROKER_ONLY_CONFIGS: dict[str, BrokerOnlyDef] = {
    d.name: d
    for d in (
        BrokerOnlyDef("num.partitions", ConfigType.INT, _integer(1, _INT_MAX), False,
                      "Partitions of a topic created without a partition count."),
        BrokerOnlyDef("default.replication.factor", ConfigType.INT, _integer(-1, 32767), False,
                      "Replication factor of a topic created without one."),
        BrokerOnlyDef("auto.create.topics.enable", ConfigType.BOOLEAN, _boolean, True,
                      "Whether Metadata requests create unknown topics."),
        # Kafka lets clients set it at broker level (librdkafka's admin test does); Walrus
        # has no SASL yet, so it is stored and has no effect.
        BrokerOnlyDef("dead.broker.replacement.ms", ConfigType.LONG, _integer(0, _LONG_MAX), False,
                      "How long a broker may be silent before the sealed segments it holds are "
                      "copied to other nodes (0: never). Cluster-wide: set it on the default "
                      "broker resource."),
        BrokerOnlyDef("sasl.kerberos.min.time.before.relogin", ConfigType.LONG, _integer(0, _LONG_MAX), False,
                      "Kerberos login refresh interval (stored; no effect until SASL exists)."),
    )
}


@dataclass(slots=True)
class Synonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    config_type: ConfigType
    doc: str
    synonyms: list[Synonym]


# ------------------------------------------------------------------ validation


def check_topic_overrides(node: Node, overrides: Mapping[str, str]) -> str | None:
    """Why a topic with these overrides would be refused (INVALID_CONFIG), or None."""
    for name, value in overrides.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            return f"Unknown topic config name: {name}"
        if value is None:
            return f"Null value not supported for topic config: {name}"
        problem = definition.check(value)
        if problem is not None:
            return f"Invalid value {value!r} for configuration {name}: {problem}"
    merged = {**topic_defaults(node), **overrides}
    try:
        LogConfig.from_topic_config(merged, LogConfig(io_backend=node.config.io_backend))
    except ValueError as exc:
        return str(exc)
    return None


def check_cluster_overrides(node: Node, overrides: Mapping[str, str]) -> str | None:
    """Checks cluster-wide defaults given by their broker names."""
    topic_level: dict[str, str] = {}
    for name, value in overrides.items():
        if name in BROKER_ONLY_CONFIGS:
            definition = BROKER_ONLY_CONFIGS[name]
            if definition.read_only:
                return f"Cannot update these configs dynamically: {name}"
            problem = definition.check(value) if value is not None else "null value"
            if problem is not None:
                return f"Invalid value {value!r} for configuration {name}: {problem}"
        elif name in BROKER_TO_TOPIC:
            topic_level[BROKER_TO_TOPIC[name]] = value
        else:
            return f"Unknown or unsupported broker config name: {name}"
    return check_topic_overrides(node, topic_level) if topic_level else None


def cluster_key(broker_name: str) -> str:
    """The key a cluster-wide default is stored under in the metadata."""
    return BROKER_TO_TOPIC.get(broker_name, broker_name)


def broker_name_of(cluster_key_name: str) -> str:
    definition = TOPIC_CONFIGS.get(cluster_key_name)
    return definition.broker_name if definition is not None else cluster_key_name


# ------------------------------------------------------------------ resolution


def broker_prefix(node_id: int) -> str:
    """Metadata keys of one broker's own overrides start with this; Node.topic_config
    reads them for that broker only."""
    return f"{node_id}/"


@dataclass(slots=True)
class Layers:
    """The dynamic broker-level layers, keyed by topic-config names (or the broker-only
    names): this broker's own overrides and the cluster-wide defaults."""

    mine: dict[str, str]
    cluster: dict[str, str]


def layers(node: Node) -> Layers:
    prefix = broker_prefix(node.node_id)
    with node.metadata() as state:
        items = list(state.cluster_config.items())
    return Layers(
        {k[len(prefix):]: v for k, v in items if k.startswith(prefix)},
        {k: v for k, v in items if "/" not in k},
    )


def topic_defaults(node: Node) -> dict[str, str]:
    """What a topic without overrides gets on this broker."""
    merged = dict(node.config.topic_defaults)
    current = layers(node)
    for layer in (current.cluster, current.mine):
        merged.update({k: v for k, v in layer.items() if k in TOPIC_CONFIGS})
    return merged


def _topic_chain(node: Node, name: str, override: str | None, current: Layers) -> list[Synonym]:
    definition = TOPIC_CONFIGS[name]
    chain: list[Synonym] = []
    if override is not None:
        chain.append(Synonym(name, override, ConfigSource.DYNAMIC_TOPIC_CONFIG))
    if name in current.mine:
        chain.append(Synonym(definition.broker_name, current.mine[name], ConfigSource.DYNAMIC_BROKER_CONFIG))
    if name in current.cluster:
        chain.append(
            Synonym(definition.broker_name, current.cluster[name], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
        )
    static = node.config.topic_defaults.get(name)
    default = DEFAULT_TOPIC_CONFIG.get(name)
    if static is not None and static != default:
        chain.append(Synonym(definition.broker_name, static, ConfigSource.STATIC_BROKER_CONFIG))
    chain.append(Synonym(definition.broker_name, default, ConfigSource.DEFAULT_CONFIG))
    return chain


def describe_topic_configs(node: Node, overrides: Mapping[str, str]) -> list[ConfigEntry]:
    """Every honoured topic config with its effective value, for a topic whose own
    overrides are `overrides`."""
    current = layers(node)
    entries = []
    for name, definition in TOPIC_CONFIGS.items():
        chain = _topic_chain(node, name, overrides.get(name), current)
        first = chain[0]
        entries.append(
            ConfigEntry(name, first.value, first.source, False, definition.config_type, definition.doc, chain)
        )
    return entries


def _broker_only_chain(node: Node, name: str, current: Layers) -> list[Synonym]:
    static_values = {
        "num.partitions": (str(node.config.num_partitions), "1"),
        "default.replication.factor": (str(node.config.default_replication_factor), "-1"),
        "auto.create.topics.enable": (str(node.config.auto_create_topics).lower(), "true"),
        "sasl.kerberos.min.time.before.relogin": ("60000", "60000"),
        "dead.broker.replacement.ms": ("900000", "900000"),
    }
    chain: list[Synonym] = []
    if not BROKER_ONLY_CONFIGS[name].read_only:
        if name in current.mine:
            chain.append(Synonym(name, current.mine[name], ConfigSource.DYNAMIC_BROKER_CONFIG))
        if name in current.cluster:
            chain.append(Synonym(name, current.cluster[name], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
    static, default = static_values[name]
    if static != default:
        chain.append(Synonym(name, static, ConfigSource.STATIC_BROKER_CONFIG))
    chain.append(Synonym(name, default, ConfigSource.DEFAULT_CONFIG))
    return chain


def describe_broker_configs(node: Node, *, defaults_only: bool) -> list[ConfigEntry]:
    """This broker's configs by their broker names. `defaults_only` (the resource "")
    lists only the cluster-wide dynamic defaults, as Kafka does."""
    current = layers(node)
    if defaults_only:
        current = Layers({}, current.cluster)
    entries = []
    for definition in TOPIC_CONFIGS.values():
        chain = _topic_chain(node, definition.name, None, current)
        entries.append(_broker_entry(definition.broker_name, chain, False, definition.config_type, definition.doc))
    for only in BROKER_ONLY_CONFIGS.values():
        chain = _broker_only_chain(node, only.name, current)
        entries.append(_broker_entry(only.name, chain, only.read_only, only.config_type, only.doc))
    if defaults_only:
        entries = [e for e in entries if e.source is ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG]
        for e in entries:
            e.synonyms = [s for s in e.synonyms if s.source is ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG]
    return entries


def _broker_entry(
    name: str, chain: list[Synonym], read_only: bool, config_type: ConfigType, doc: str
) -> ConfigEntry:
    # At broker level every link of the chain is named by the broker name.
    chain = [Synonym(name, s.value, s.source) for s in chain]
    return ConfigEntry(name, chain[0].value, chain[0].source, read_only, config_type, doc, chain)


def _broker_only_value(node: Node, name: str) -> int:
    return int(_broker_only_chain(node, name, layers(node))[0].value or 0)


def effective_num_partitions(node: Node) -> int:
    return _broker_only_value(node, "num.partitions")


def effective_replication_factor(node: Node) -> int:
    """The replication factor of a topic created without one: the configured
    default.replication.factor, or (-1, the default) min(3, live brokers)."""
    configured = _broker_only_value(node, "default.replication.factor")
    if configured >= 1:
        return configured
    with node.metadata() as state:
        return state.default_replication_factor(len(state.live_broker_ids(time.time_ns() // 1_000_000)))
