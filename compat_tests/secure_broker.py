"""A broker process with every kind of listener, and the client settings for each.

One node listens on four ports:

    PLAINTEXT       no authentication (what the harness waits on)
    SASL_PLAINTEXT  SASL: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER
    SSL             TLS; a client certificate, when sent, names the principal
    SASL_SSL        TLS, then SASL with the same mechanisms

configured through a TOML file, as an operator would. Users come from a
scram_credentials_file (PLAIN checks the same credentials); OAUTHBEARER tokens are JWTs
signed by a key whose JWKS the broker reads.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider as AioTokenProvider
from kafka.net.sasl.oauth import AbstractTokenProvider as KafkaPythonTokenProvider

from compat_tests.harness import BrokerProcess, free_port
from tests.oauth_tokens import SigningKey, claims, jwks_json, make_rsa_key, sign_token
from tests.tls_material import TlsMaterial, make_tls_material

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")


@dataclass
class SecureBroker:
    process: BrokerProcess
    ports: dict[str, int]
    tls: TlsMaterial
    signing_key: SigningKey
    workdir: Path
    extra_settings: dict[str, Any] = field(default_factory=dict)

    def bootstrap(self, protocol: str) -> str:
        return f"127.0.0.1:{self.ports[protocol]}"

    def token(self, user: str, lifetime_s: float = 3600) -> str:
        return sign_token(self.signing_key, claims(user, lifetime_s=lifetime_s))

    def log_text(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    # --- client settings -------------------------------------------------------------

    def confluent(self, protocol: str, mechanism: str | None = None, user: str = "alice",
                  password: str | None = None, cert_user: str | None = None) -> dict[str, Any]:
        """librdkafka settings (confluent-kafka and kcat)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap(protocol),
                                "security.protocol": protocol.lower()}
        if "SSL" in protocol:
            conf["ssl.ca.location"] = str(self.tls.ca_cert)
            if cert_user is not None:
                cert, key = self.tls.client_cert(cert_user)
                conf["ssl.certificate.location"] = str(cert)
                conf["ssl.key.location"] = str(key)
        if "SASL" in protocol:
            assert mechanism is not None
            conf["sasl.mechanism"] = mechanism
            if mechanism == "OAUTHBEARER":
                token = self.token(user)
                conf["oauth_cb"] = lambda _config: (token, time.time() + 3600)
            else:
                conf["sasl.username"] = user
                conf["sasl.password"] = USERS[user] if password is None else password
        return conf

    def kafka_python(self, protocol: str, mechanism: str | None = None, user: str = "alice",
                     password: str | None = None, cert_user: str | None = None) -> dict[str, Any]:
        """kafka-python settings; aiokafka takes the same but an ssl_context."""
        conf: dict[str, Any] = {"bootstrap_servers": self.bootstrap(protocol),
                                "security_protocol": protocol}
        if "SSL" in protocol:
            conf["ssl_cafile"] = str(self.tls.ca_cert)
            if cert_user is not None:
                cert, key = self.tls.client_cert(cert_user)
                conf["ssl_certfile"] = str(cert)
                conf["ssl_keyfile"] = str(key)
        if "SASL" in protocol:
            assert mechanism is not None
            conf["sasl_mechanism"] = mechanism
            if mechanism == "OAUTHBEARER":
                conf["sasl_oauth_token_provider"] = _TokenProvider(self.token(user))
            else:
                conf["sasl_plain_username"] = user
                conf["sasl_plain_password"] = USERS[user] if password is None else password
        return conf

    def kcat_args(self, protocol: str, mechanism: str | None = None, user: str = "alice",
                  cert_user: str | None = None) -> list[str]:
        args = ["-b", self.bootstrap(protocol)]
        conf = self.confluent(protocol, mechanism, user, cert_user=cert_user)
        conf.pop("bootstrap.servers")
        for key, value in conf.items():
            args += ["-X", f"{key}={value}"]
        return args


class _TokenProvider(KafkaPythonTokenProvider):
    """kafka-python's OAUTHBEARER token provider: one fixed token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token


class AsyncTokenProvider(AioTokenProvider):
    """aiokafka's, which awaits token()."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


def start_secure_broker(workdir: Path, **settings: Any) -> SecureBroker:
    """Start the broker; `settings` are extra TOML settings (super_users, ...)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tls = make_tls_material(workdir / "tls")
    key = make_rsa_key()
    (workdir / "jwks.json").write_text(jwks_json(key))
    users = workdir / "users.txt"
    users.write_text("".join(
        f"{user}:{mechanism}:{password}\n" for user, password in USERS.items()
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")))
    os.chmod(users, 0o600)
    ports = {protocol: free_port() for protocol in PROTOCOLS}
    config = {
        "listeners": ",".join(f"{p}://127.0.0.1:{port}" for p, port in ports.items()),
        "sasl_enabled_mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        "scram_credentials_file": str(users),
        "sasl_oauthbearer_jwks_file": str(workdir / "jwks.json"),
        "ssl_certfile": str(tls.server_cert),
        "ssl_keyfile": str(tls.server_key),
        "ssl_cafile": str(tls.ca_cert),
        "ssl_client_auth": "requested",
        "ssl_principal_mapping_rules": "RULE:^CN=(.*)$/$1/,DEFAULT",
        "group_initial_rebalance_delay_ms": 0,
        **settings,
    }
    toml = workdir / "broker.toml"
    toml.write_text("".join(f"{name} = {json.dumps(value)}\n" for name, value in config.items()))
    process = BrokerProcess(workdir / "data", port=ports["PLAINTEXT"],
                            extra_args=["--config", str(toml)])
    process.start()
    # start() waits for the PLAINTEXT port alone; the node opens its listeners one after
    # another, so a test that connects to another one at once could be refused.
    deadline = time.monotonic() + 30
    for protocol, port in ports.items():
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"the {protocol} listener never opened on port {port}"
                time.sleep(0.05)
    return SecureBroker(process, ports, tls, key, workdir, settings)
