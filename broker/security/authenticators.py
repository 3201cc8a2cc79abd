"""The server side of each client SASL mechanism, built from the node's configuration
and its replicated SCRAM credentials.

- SCRAM-SHA-256/512 check the credentials in the metadata (broker/security/scram.py).
- PLAIN checks `sasl_plain_credentials_file` when set, otherwise the same SCRAM
  credentials: the password is salted and hashed as SCRAM would and compared with the
  stored key, so one set of users serves both mechanisms.
- OAUTHBEARER validates JWTs against `sasl_oauthbearer_jwks_file`, which is re-read
  when it changes (a key rotation needs no restart; a broken new file keeps the old
  keys and is logged).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable

from broker.config import BrokerConfig
from broker.security import scram
from broker.security.jwks import InvalidKeySet
from broker.security.jwt import JwtValidator
from broker.security.oauthbearer import MECHANISM as OAUTHBEARER
from broker.security.oauthbearer import OAuthBearerServer
from broker.security.plain import MECHANISM as PLAIN
from broker.security.plain import PlainServer, file_check, load_plain_credentials
from broker.security.sasl_mechanism import AuthenticationFailed, SaslServer

log = logging.getLogger(__name__)

# (user, mechanism) -> the stored SCRAM credential, or None.
CredentialLookup = Callable[[str, str], "scram.ScramCredential | None"]
# Strongest first: PLAIN against the store uses the first credential the user has.
_SCRAM_FOR_PLAIN = ("SCRAM-SHA-512", "SCRAM-SHA-256")


class Authenticators:
    def __init__(self, config: BrokerConfig, credential: CredentialLookup) -> None:
        self._config = config
        self._credential = credential
        self._plain_file = None
        path = config.sasl_plain_credentials_file
        if path is not None:
            try:
                self._plain_file = file_check(load_plain_credentials(path))
            except (OSError, ValueError) as exc:
                raise ValueError(f"sasl_plain_credentials_file {path}: {exc}") from None
        self._jwks_lock = threading.Lock()
        self._jwks_seen: tuple[int, int, int] | None = None
        self._validator: JwtValidator | None = None
        if config.sasl_oauthbearer_jwks_file is not None or config.sasl_oauthbearer_allow_unsecured:
            self._validator = self._load_validator(initial=True)

    def new_server(self, mechanism: str) -> SaslServer:
        if mechanism in scram.MECHANISMS:
            return scram.ScramServer(mechanism, lambda user: self._credential(user, mechanism))
        if mechanism == PLAIN:
            return PlainServer(self.plain_check)
        if mechanism == OAUTHBEARER:
            return OAuthBearerServer(self.oauth_validator())
        raise AuthenticationFailed(f"mechanism {mechanism} is not available")

    def plain_check(self, user: str, password: str) -> bool:
        if self._plain_file is not None:
            return self._plain_file(user, password)
        for mechanism in _SCRAM_FOR_PLAIN:
            stored = self._credential(user, mechanism)
            if stored is not None:
                derived = scram.derive(mechanism, password, stored.salt, stored.iterations)
                return hmac.compare_digest(derived.stored_key, stored.stored_key)
        # As long as a real check, so the time taken does not tell who exists.
        scram.derive("SCRAM-SHA-256", password, b"\0" * 32, scram.MIN_ITERATIONS)
        return False

    def oauth_validator(self) -> JwtValidator:
        with self._jwks_lock:
            if self._config.sasl_oauthbearer_jwks_file is not None:
                self._validator = self._load_validator(initial=False) or self._validator
            if self._validator is None:
                raise AuthenticationFailed("OAUTHBEARER is not configured on this broker")
            return self._validator

    def _load_validator(self, *, initial: bool) -> JwtValidator | None:
        """A validator for the JWKS file as it is now; None when it has not changed (or,
        after start, cannot be used: the previous keys stay)."""
        config = self._config
        path = config.sasl_oauthbearer_jwks_file
        document = '{"keys": []}'
        if path is not None:
            try:
                info = os.stat(path)
                seen = (info.st_mtime_ns, info.st_size, info.st_ino)
                if seen == self._jwks_seen:
                    return None
                self._jwks_seen = seen
                document = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                if initial:
                    raise ValueError(f"sasl_oauthbearer_jwks_file {path}: {exc}") from None
                log.warning("OAUTHBEARER key set %s unreadable, keeping the old keys: %s", path, exc)
                return None
        try:
            validator = JwtValidator.from_jwks(
                document,
                expected_issuer=config.sasl_oauthbearer_expected_issuer,
                expected_audience=config.sasl_oauthbearer_expected_audience or None,
                subject_claim=config.sasl_oauthbearer_sub_claim_name,
                clock_skew_seconds=config.sasl_oauthbearer_clock_skew_seconds,
                allow_unsecured=config.sasl_oauthbearer_allow_unsecured,
            )
        except InvalidKeySet as exc:
            if initial:
                raise ValueError(f"sasl_oauthbearer_jwks_file {path}: {exc}") from None
            log.warning("OAUTHBEARER key set %s not usable, keeping the old keys: %s", path, exc)
            return None
        if not initial:
            log.info("OAUTHBEARER key set %s reloaded", path)
        return validator
