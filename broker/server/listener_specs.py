"""Listeners as Kafka names them: `listeners`, `advertised.listeners` and
`listener.security.protocol.map`.

A listener is a name, an address and (through the map) a security protocol:

    listeners = "CLIENT://0.0.0.0:9093,INTERNAL://10.0.0.5:9092"
    listener_security_protocol_map = "CLIENT:SASL_SSL,INTERNAL:PLAINTEXT"

Kafka's default map names each protocol after itself, so `SASL_SSL://:9093` needs no
map entry. Pure parsing and checks; the server opens one socket per listener.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_PROTOCOL_MAP = {name: name for name in SECURITY_PROTOCOLS}
# Kafka's listener names: letters, digits, underscores (case-insensitive, kept upper).
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class ListenerError(ValueError):
    """A listener setting that cannot be used, with the reason."""


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


def parse_listeners(value: str | list[str] | tuple[str, ...], *, what: str) -> tuple[Listener, ...]:
    """"NAME://HOST:PORT,..." (or a list of such strings). An empty host means every
    interface when listening, as in Kafka; a name may appear once."""
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    listeners: list[Listener] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, address = item.partition("://")
        if not sep or not _NAME.fullmatch(name):
            raise ListenerError(f"{what}: expected NAME://HOST:PORT, got {item!r}")
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ListenerError(f"{what}: expected NAME://HOST:PORT, got {item!r}")
        listener = Listener(name.upper(), host.strip("[]"), int(port))
        if any(existing.name == listener.name for existing in listeners):
            raise ListenerError(f"{what}: listener {listener.name} is named twice")
        listeners.append(listener)
    return tuple(listeners)


def parse_protocol_map(value: str | dict[str, str]) -> dict[str, str]:
    """"NAME:PROTOCOL,..." (or a TOML table) -> {NAME: PROTOCOL}."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for item in (i.strip() for i in value.split(",")):
            if not item:
                continue
            name, sep, protocol = item.partition(":")
            if not sep:
                raise ListenerError(
                    f"listener_security_protocol_map: expected NAME:PROTOCOL, got {item!r}"
                )
            pairs.append((name, protocol))
    mapping: dict[str, str] = {}
    for name, protocol in pairs:
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not _NAME.fullmatch(name):
            raise ListenerError(f"listener_security_protocol_map: bad listener name {name!r}")
        if protocol not in SECURITY_PROTOCOLS:
            raise ListenerError(
                f"listener_security_protocol_map: {name}:{protocol}: the protocol must be one "
                f"of {', '.join(SECURITY_PROTOCOLS)}"
            )
        mapping[name] = protocol
    return mapping


def protocol_of(name: str, mapping: dict[str, str]) -> str:
    try:
        return mapping[name]
    except KeyError:
        raise ListenerError(
            f"listener {name} has no security protocol: add {name}:<PROTOCOL> to "
            "listener_security_protocol_map"
        ) from None


def uses_tls(protocol: str) -> bool:
    return protocol in ("SSL", "SASL_SSL")


def uses_sasl(protocol: str) -> bool:
    return protocol in ("SASL_PLAINTEXT", "SASL_SSL")
