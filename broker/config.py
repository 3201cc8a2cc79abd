"""The broker's configuration: one typed object built from defaults, a TOML file,
WALRUS_* environment variables and command-line flags, in that order of precedence
(a later source overrides an earlier one).

Topic-level settings use Kafka's own names (``retention.ms``, ``segment.bytes``...)
so that what a client sends in CreateTopics or AlterConfigs and what an operator puts
in the TOML file mean the same thing.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.cluster_tuning import ClusterTuning, TuningError
from broker.server.listener_specs import (
    DEFAULT_PROTOCOL_MAP,
    Listener,
    ListenerError,
    parse_listeners,
    parse_protocol_map,
    protocol_of,
    uses_sasl,
    uses_tls,
)

if TYPE_CHECKING:
    from broker.security.tls import TlsSettings


class ConfigError(ValueError):
    """A setting that cannot be used, with the reason."""


# The names logging accepts; anything else would fail only after start-up began.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")


def parse_host_port(value: str, *, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class Peer:
    node_id: int
    host: str
    raft_port: int

    @classmethod
    def parse(cls, value: str) -> Peer:
        node, sep, address = value.partition("@")
        if not sep or not node.strip().isdigit():
            raise ConfigError(f"peers: expected ID@HOST:RAFTPORT, got {value!r}")
        host, port = parse_host_port(address.strip(), what="peers")
        return cls(int(node), host, port)


# Cluster-wide defaults for topic configs. Each may be overridden per topic.
DEFAULT_TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": str(7 * 24 * 3600 * 1000),
    "retention.bytes": "-1",
    "segment.bytes": str(1024 * 1024 * 1024),
    "segment.ms": str(7 * 24 * 3600 * 1000),
    # Walrus: records after which a cluster rolls the active segment to the next node.
    "segment.entries": "-1",
    "segment.index.bytes": str(10 * 1024 * 1024),
    "max.message.bytes": str(1024 * 1024 + 12),
    "message.timestamp.type": "CreateTime",
    "flush.messages": str(2**63 - 1),
    "flush.ms": str(2**63 - 1),
    "min.insync.replicas": "1",
    "compression.type": "producer",
    "message.format.version": "3.0-IV1",
    # Accepted for compatibility; Walrus has no compaction, tiering or throttles.
    "delete.retention.ms": str(24 * 3600 * 1000),
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": str(2**63 - 1),
    "min.cleanable.dirty.ratio": "0.5",
    "file.delete.delay.ms": "60000",
    "preallocate": "false",
    "unclean.leader.election.enable": "false",
    "message.downconversion.enable": "true",
    "segment.jitter.ms": "0",
    "message.timestamp.difference.max.ms": str(2**63 - 1),
    "follower.replication.throttled.replicas": "",
    "leader.replication.throttled.replicas": "",
}


_TUNING = ClusterTuning()
_TUNING_FIELDS = tuple(f.name for f in fields(ClusterTuning))


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    node_id: int = 1
    listen: tuple[str, int] = ("127.0.0.1", 9092)
    # What clients are told to connect to; defaults to the listen address.
    advertise: tuple[str, int] | None = None
    data_dir: Path = Path("walrus-data")
    raft: tuple[str, int] | None = None
    peers: tuple[Peer, ...] = ()
    rack: str | None = None
    cluster_id: str | None = None
    # The secret every member of a cluster shares; only holders may speak on the Raft
    # port. A node without peers makes its own (data_dir/cluster_secret) when not given.
    cluster_secret_file: Path | None = None

    num_partitions: int = 1
    auto_create_topics: bool = True
    # -1: min(3, live brokers), so a cluster's topics survive the loss of a node.
    default_replication_factor: int = -1
    max_request_bytes: int = 100 * 1024 * 1024
    # Kafka's queued.max.request.bytes (unbounded by default in Kafka): what the requests
    # of all connections together may hold; room for two of max_request_bytes at once.
    queued_max_request_bytes: int = 256 * 1024 * 1024
    # Kafka's connections.max.idle.ms.
    idle_timeout_ms: int = 10 * 60 * 1000
    forward_requests: bool = True
    # Kafka's replica.lag.time.max.ms: a follower that has not caught up for this long
    # leaves the in-sync set.
    replica_lag_time_max_ms: int = 10_000
    io_backend: str = "auto"
    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 30 * 60 * 1000
    offsets_retention_minutes: int = 7 * 24 * 60
    retention_check_interval_ms: int = 5 * 60 * 1000
    # How long start-up waits for a Raft majority (a leader this node has caught up
    # with) before it gives up with a clear error.
    metadata_ready_timeout_ms: int = 60_000
    log_level: str = "INFO"
    # Access control (docs/operations.md): Kafka's allow.everyone.if.no.acl.found, on
    # by default because every client is User:ANONYMOUS until authentication exists;
    # super_users is Kafka's super.users ("User:a;User:b").
    allow_everyone_if_no_acl_found: bool = True
    super_users: tuple[str, ...] = ()
    # Listeners (docs/operations.md, Listeners and security). Empty: one PLAINTEXT
    # listener on `listen`, told to clients as `advertise`.
    listeners: tuple[Listener, ...] = ()
    # Per listener name, the address clients are told; a listener not named here is
    # told as it listens.
    advertised_listeners: tuple[Listener, ...] = ()
    listener_security_protocol_map: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_PROTOCOL_MAP)
    )
    # The listener other nodes reach this one on (its address goes in the metadata);
    # empty: the first listener.
    inter_broker_listener_name: str = ""
    sasl_enabled_mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
    # PLAIN's passwords: "user:password" lines. Without it PLAIN checks the SCRAM store.
    sasl_plain_credentials_file: Path | None = None
    # SCRAM users made at start when missing or with another password: lines of
    # "user:MECHANISM:password" (the first administrator, typically).
    scram_credentials_file: Path | None = None
    # OAUTHBEARER: tokens are JWTs signed by a key of this JWKS file (re-read when it
    # changes), with these claims checked.
    sasl_oauthbearer_jwks_file: Path | None = None
    sasl_oauthbearer_expected_issuer: str | None = None
    sasl_oauthbearer_expected_audience: tuple[str, ...] = ()
    sasl_oauthbearer_sub_claim_name: str = "sub"
    sasl_oauthbearer_clock_skew_seconds: int = 30
    # Unsigned tokens (alg "none"): for tests only, never in production.
    sasl_oauthbearer_allow_unsecured: bool = False
    # Kafka's connections.max.reauth.ms: 0 lets a SASL session live as long as its
    # connection; otherwise clients re-authenticate within it (KIP-368).
    connections_max_reauth_ms: int = 0
    connection_failed_authentication_delay_ms: int = 100
    # TLS for SSL and SASL_SSL listeners (Kafka's ssl.* with PEM files): the server's
    # certificate chain and key, the CAs client certificates must chain to, and whether
    # clients must present one (none, requested, required).
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_client_auth: str = "none"
    ssl_enabled_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ssl_cipher_suites: tuple[str, ...] = ()
    # From a client certificate's subject to a principal (SSL listeners).
    ssl_principal_mapping_rules: str = "DEFAULT"
    # How often changed certificate and key files are picked up without a restart.
    ssl_reload_check_interval_ms: int = 10_000
    topic_defaults: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPIC_CONFIG))
    # Leases, failover and replication timings (broker/cluster_tuning.py): the same on
    # every node of a cluster.
    node_leases: bool = _TUNING.node_leases
    lease_ms: int = _TUNING.lease_ms
    lease_renew_interval_ms: int = _TUNING.lease_renew_interval_ms
    broker_heartbeat_interval_ms: int = _TUNING.broker_heartbeat_interval_ms
    lease_safety_margin_ms: int = _TUNING.lease_safety_margin_ms
    failover_check_interval_ms: int = _TUNING.failover_check_interval_ms
    follower_refresh_interval_ms: int = _TUNING.follower_refresh_interval_ms
    in_sync_check_interval_ms: int = _TUNING.in_sync_check_interval_ms
    broker_session_timeout_ms: int = _TUNING.broker_session_timeout_ms
    raft_election_timeout_min_ms: int = _TUNING.raft_election_timeout_min_ms
    raft_election_timeout_max_ms: int = _TUNING.raft_election_timeout_max_ms

    def cluster_tuning(self) -> ClusterTuning:
        """The timing settings as one record; raises ConfigError when they cannot work
        together."""
        try:
            return ClusterTuning(**{name: getattr(self, name) for name in _TUNING_FIELDS})
        except TuningError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def advertised(self) -> tuple[str, int]:
        """The inter-broker listener's advertised address: what the metadata records as
        this node's host and port."""
        chosen = self.advertised_listener(self.inter_broker_listener)
        return chosen.host, chosen.port

    @property
    def bound_listeners(self) -> tuple[Listener, ...]:
        return self.listeners or (Listener("PLAINTEXT", *self.listen),)

    @property
    def inter_broker_listener(self) -> str:
        return self.inter_broker_listener_name.upper() or self.bound_listeners[0].name

    def security_protocol(self, listener: str) -> str:
        return protocol_of(listener, dict(self.listener_security_protocol_map))

    def tls_settings(self) -> TlsSettings:
        """The TLS settings of SSL and SASL_SSL listeners; raises ConfigError."""
        from broker.security.tls import TlsSettings

        if self.ssl_certfile is None or self.ssl_keyfile is None:
            raise ConfigError("TLS needs ssl_certfile and ssl_keyfile")
        return TlsSettings(
            ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
            ssl_key_password=self.ssl_key_password, ssl_cafile=self.ssl_cafile,
            ssl_client_auth=self.ssl_client_auth,
            ssl_enabled_protocols=self.ssl_enabled_protocols,
            ssl_cipher_suites=self.ssl_cipher_suites,
            ssl_principal_mapping_rules=self.ssl_principal_mapping_rules,
        )

    def advertised_endpoints(self) -> dict[str, tuple[str, int]]:
        """Every listener's advertised address, by listener name: what the metadata
        records for this node."""
        endpoints = {}
        for listener in self.bound_listeners:
            told = self.advertised_listener(listener.name)
            endpoints[listener.name] = (told.host, told.port)
        return endpoints

    def advertised_listener(self, name: str) -> Listener:
        for told in self.advertised_listeners:
            if told.name == name:
                return told
        if not self.listeners and self.advertise is not None:
            return Listener(name, *self.advertise)
        for bound in self.bound_listeners:
            if bound.name == name:
                return bound
        raise ConfigError(f"no listener named {name}")


# Settings whose values are HOST:PORT pairs, lists of peers, paths or booleans need
# converting from strings; the rest follow their dataclass type.
_HOST_PORT = {"listen", "advertise", "raft"}


def _convert(name: str, value: Any, template: Any) -> Any:
    try:
        if name in _HOST_PORT:
            if isinstance(value, (list, tuple)):
                return (str(value[0]), int(value[1]))
            return parse_host_port(str(value), what=name)
        if name == "peers":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(Peer.parse(str(p)) for p in items if str(p).strip())
        if name == "data_dir":
            return Path(value)
        if name in ("cluster_secret_file", "sasl_plain_credentials_file", "ssl_certfile",
                    "ssl_keyfile", "ssl_cafile", "scram_credentials_file",
                    "sasl_oauthbearer_jwks_file"):
            return None if value in (None, "") else Path(value)
        if name == "sasl_oauthbearer_expected_issuer":
            return None if value in (None, "") else str(value)
        if name in ("ssl_enabled_protocols", "ssl_cipher_suites",
                    "sasl_oauthbearer_expected_audience"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(m).strip() for m in items if str(m).strip())
        if name == "ssl_key_password":
            return None if value in (None, "") else str(value)
        if name in ("listeners", "advertised_listeners"):
            return parse_listeners(value, what=name)
        if name == "listener_security_protocol_map":
            return parse_protocol_map(value if isinstance(value, str) else dict(value))
        if name == "sasl_enabled_mechanisms":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(m).strip().upper() for m in items if str(m).strip())
        if name == "super_users":
            items = value.split(";") if isinstance(value, str) else list(value)
            return tuple(str(p).strip() for p in items if str(p).strip())
        if name == "topic_defaults":
            if not isinstance(value, Mapping):
                raise ConfigError("topic_defaults must be a table of Kafka topic configs")
            merged = dict(DEFAULT_TOPIC_CONFIG)
            merged.update({str(k): str(v) for k, v in value.items()})
            return merged
        if isinstance(template, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{name}: expected a boolean, got {value!r}")
        if isinstance(template, int):
            return int(value)
        if name in ("rack", "cluster_id"):
            return None if value in (None, "") else str(value)
        return str(value) if not isinstance(value, str) else value
    except ConfigError:
        raise
    except ListenerError as exc:
        raise ConfigError(str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def _field_names() -> dict[str, Any]:
    defaults = BrokerConfig()
    return {f.name: getattr(defaults, f.name) for f in fields(BrokerConfig)}


def apply_settings(
    config: BrokerConfig, settings: Mapping[str, Any], *, source: str
) -> BrokerConfig:
    known = _field_names()
    changes: dict[str, Any] = {}
    for raw_name, value in settings.items():
        name = raw_name.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {raw_name!r}")
        if value is None:
            continue
        changes[name] = _convert(name, value, known[name])
    return replace(config, **changes)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """WALRUS_NODE_ID=2 sets node_id, WALRUS_DATA_DIR=/x sets data_dir, and so on."""
    known = _field_names()
    out = {}
    for key, value in environ.items():
        if key.startswith("WALRUS_"):
            name = key[len("WALRUS_") :].lower()
            if name in known and name != "topic_defaults":
                out[name] = value
    return out


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """WALRUS_* variables that name no setting: most likely typos, which would
    otherwise be ignored without a word (the broker warns and goes on)."""
    known = _field_names()
    return sorted(
        key for key in environ
        if key.startswith("WALRUS_")
        and (key[len("WALRUS_") :].lower() not in known or key == "WALRUS_TOPIC_DEFAULTS")
    )


def build_config(
    cli_settings: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> BrokerConfig:
    config = BrokerConfig()
    if config_file is not None:
        config = apply_settings(config, load_toml(config_file), source=str(config_file))
    config = apply_settings(
        config, from_environment(os.environ if environ is None else environ), source="environment"
    )
    config = apply_settings(config, cli_settings, source="command line")
    validate(config)
    return config


def validate(config: BrokerConfig) -> None:
    if config.node_id < 0:
        raise ConfigError("node_id must be >= 0")
    if config.num_partitions < 1:
        raise ConfigError("num_partitions must be >= 1")
    if config.max_request_bytes < 1024:
        raise ConfigError("max_request_bytes must be at least 1024")
    if config.io_backend not in ("auto", "io_uring", "posix"):
        raise ConfigError("io_backend must be auto, io_uring or posix")
    if config.peers and config.raft is None:
        raise ConfigError("a node with peers needs its own --raft HOST:PORT")
    if config.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"log_level: {config.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
        )
    if config.queued_max_request_bytes < config.max_request_bytes:
        raise ConfigError(
            "queued_max_request_bytes must be at least max_request_bytes "
            f"({config.max_request_bytes}), or the largest allowed request could never be read"
        )
    if config.metadata_ready_timeout_ms < 1:
        raise ConfigError("metadata_ready_timeout_ms must be >= 1")
    for peer in config.peers:
        if peer.node_id == config.node_id:
            raise ConfigError(
                f"peers: node {config.node_id} is named in its own --peers "
                f"({peer.node_id}@{peer.host}:{peer.raft_port}); list only the other nodes"
            )
        if config.raft is not None and (peer.host, peer.raft_port) == config.raft:
            raise ConfigError(
                f"peers: {peer.host}:{peer.raft_port} is this node's own --raft address; "
                "list only the other nodes"
            )
    ids = [p.node_id for p in config.peers]
    if len(ids) != len(set(ids)):
        raise ConfigError("peers: a node id is listed twice")
    config.cluster_tuning()
    _validate_listeners(config)


# What the broker can authenticate with; WALRUS-NODE (node identity) is always on.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def _validate_listeners(config: BrokerConfig) -> None:
    bound = {listener.name for listener in config.bound_listeners}
    try:
        protocols = {name: config.security_protocol(name) for name in bound}
    except ListenerError as exc:
        raise ConfigError(str(exc)) from exc
    for told in config.advertised_listeners:
        if told.name not in bound:
            raise ConfigError(
                f"advertised_listeners: {told.name} is not one of the listeners "
                f"({', '.join(sorted(bound))})"
            )
    for listener in config.bound_listeners:
        told = config.advertised_listener(listener.name)
        if told.host in ("", "0.0.0.0", "::"):
            raise ConfigError(
                f"listener {listener.name} listens on every interface ({listener}): name the "
                f"address clients should use in advertised_listeners"
            )
    if config.inter_broker_listener_name and config.inter_broker_listener not in bound:
        raise ConfigError(
            f"inter_broker_listener_name: {config.inter_broker_listener_name} is not one of "
            f"the listeners ({', '.join(sorted(bound))})"
        )
    tls_listeners = sorted(name for name, protocol in protocols.items() if uses_tls(protocol))
    if tls_listeners:
        if config.ssl_certfile is None or config.ssl_keyfile is None:
            raise ConfigError(
                f"listener {tls_listeners[0]} uses TLS: set ssl_certfile and ssl_keyfile"
            )
        config.tls_settings()  # checks the values; the files are read at start
    if config.ssl_reload_check_interval_ms < 100:
        raise ConfigError("ssl_reload_check_interval_ms must be >= 100")
    unknown = [m for m in config.sasl_enabled_mechanisms if m not in SASL_MECHANISMS]
    if unknown:
        raise ConfigError(
            f"sasl_enabled_mechanisms: {', '.join(unknown)} not supported "
            f"(supported: {', '.join(SASL_MECHANISMS)})"
        )
    if any(uses_sasl(p) for p in protocols.values()) and not config.sasl_enabled_mechanisms:
        raise ConfigError("a SASL listener needs at least one of sasl_enabled_mechanisms")
    if ("OAUTHBEARER" in config.sasl_enabled_mechanisms
            and config.sasl_oauthbearer_jwks_file is None
            and not config.sasl_oauthbearer_allow_unsecured):
        raise ConfigError(
            "OAUTHBEARER needs sasl_oauthbearer_jwks_file: the keys tokens are signed with"
        )
    if config.sasl_oauthbearer_clock_skew_seconds < 0:
        raise ConfigError("sasl_oauthbearer_clock_skew_seconds must be >= 0")
    if config.connections_max_reauth_ms < 0:
        raise ConfigError("connections_max_reauth_ms must be >= 0 (0: no re-authentication)")
    if config.connection_failed_authentication_delay_ms < 0:
        raise ConfigError("connection_failed_authentication_delay_ms must be >= 0")
