"""Listeners as Kafka names them, in every form a setting takes (flags, TOML, WALRUS_*),
and what each listener tells clients."""

from pathlib import Path

import pytest

from broker.cli import parse_config
from broker.config import ConfigError, build_config
from broker.server.listener_specs import Listener, parse_listeners, parse_protocol_map

pytestmark = pytest.mark.unit


def test_without_listeners_the_listen_address_is_one_plaintext_listener() -> None:
    config = build_config({"listen": "127.0.0.1:9100", "advertise": "kafka.example:19100"},
                          environ={})
    assert config.bound_listeners == (Listener("PLAINTEXT", "127.0.0.1", 9100),)
    assert config.inter_broker_listener == "PLAINTEXT"
    assert config.advertised == ("kafka.example", 19100)
    assert config.security_protocol("PLAINTEXT") == "PLAINTEXT"


def test_named_listeners_with_a_map_and_advertised_addresses() -> None:
    config = build_config({
        "listeners": "client://0.0.0.0:9093, INTERNAL://10.0.0.1:9092",
        "advertised_listeners": "CLIENT://kafka1.example:9093",
        "listener_security_protocol_map": "CLIENT:SASL_SSL,INTERNAL:PLAINTEXT",
        "inter_broker_listener_name": "internal",
        "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem",
    }, environ={})
    assert [listener.name for listener in config.bound_listeners] == ["CLIENT", "INTERNAL"]
    assert config.advertised_listener("CLIENT") == Listener("CLIENT", "kafka1.example", 9093)
    assert config.advertised_listener("INTERNAL") == Listener("INTERNAL", "10.0.0.1", 9092)
    assert config.inter_broker_listener == "INTERNAL"
    # What the metadata records as the node's host and port: the inter-broker listener's.
    assert config.advertised == ("10.0.0.1", 9092)
    assert config.security_protocol("CLIENT") == "SASL_SSL"


def test_toml_and_environment_forms(tmp_path: Path) -> None:
    toml = tmp_path / "walrus.toml"
    toml.write_text(
        'listeners = ["SASL_PLAINTEXT://127.0.0.1:9093", "PLAINTEXT://127.0.0.1:9092"]\n'
        'sasl_enabled_mechanisms = ["PLAIN"]\n'
        '[listener_security_protocol_map]\nSASL_PLAINTEXT = "SASL_PLAINTEXT"\n'
        'PLAINTEXT = "PLAINTEXT"\n'
    )
    config = build_config({}, config_file=toml,
                          environ={"WALRUS_CONNECTIONS_MAX_REAUTH_MS": "60000",
                                   "WALRUS_INTER_BROKER_LISTENER_NAME": "PLAINTEXT"})
    assert [li.port for li in config.bound_listeners] == [9093, 9092]
    assert config.sasl_enabled_mechanisms == ("PLAIN",)
    assert config.connections_max_reauth_ms == 60000
    assert config.inter_broker_listener == "PLAINTEXT"


def test_flags() -> None:
    config = parse_config(["--listeners", "SSL://127.0.0.1:9094", "--ssl-certfile", "/c.pem",
                           "--ssl-keyfile", "/k.pem", "--ssl-client-auth", "required",
                           "--ssl-cafile", "/ca.pem", "--super-users", "User:admin"])
    assert config.ssl_client_auth == "required"
    assert config.super_users == ("User:admin",)
    assert config.tls_settings().ssl_cafile == Path("/ca.pem")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("PLAINTEXT:9092", "expected NAME://HOST:PORT"),
        ("PLAIN TEXT://h:1", "expected NAME://HOST:PORT"),
        ("A://h:99999", "expected NAME://HOST:PORT"),
        ("A://h:1,a://h:2", "listener A is named twice"),
    ],
)
def test_malformed_listeners(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_listeners(value, what="listeners")


def test_an_ipv6_listener_keeps_its_address() -> None:
    (listener,) = parse_listeners("PLAINTEXT://[::1]:9092", what="listeners")
    assert (listener.host, listener.port) == ("::1", 9092)
    assert str(listener) == "PLAINTEXT://[::1]:9092"


@pytest.mark.parametrize(("value", "reason"), [
    ("CLIENT", "expected NAME:PROTOCOL"),
    ("CLIENT:TLS", "the protocol must be one of"),
])
def test_malformed_protocol_maps(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_protocol_map(value)


def test_a_given_map_replaces_the_default_one() -> None:
    with pytest.raises(ConfigError, match="listener PLAINTEXT has no security protocol"):
        build_config({"listeners": "PLAINTEXT://127.0.0.1:9092",
                      "listener_security_protocol_map": "CLIENT:SSL"}, environ={})


def test_inter_broker_listener_must_be_a_listener() -> None:
    with pytest.raises(ConfigError, match="inter_broker_listener_name: OTHER is not one of"):
        build_config({"inter_broker_listener_name": "OTHER"}, environ={})
