"""SASL PLAIN's server side, its credentials file, and PLAIN checked against the SCRAM
credentials when there is no file."""

from pathlib import Path

import pytest

from broker.config import BrokerConfig
from broker.security import scram
from broker.security.authenticators import Authenticators
from broker.security.plain import PlainServer, file_check, load_plain_credentials
from broker.security.sasl_mechanism import AuthenticationFailed

pytestmark = pytest.mark.unit

USERS = {"alice": "alice-secret", "bob": "b:o:b"}


def server() -> PlainServer:
    return PlainServer(file_check(USERS))


def test_the_right_password_names_the_user() -> None:
    srv = server()
    assert srv.evaluate(b"\0alice\0alice-secret") == b""
    assert srv.complete and srv.principal == "User:alice" and srv.expires_at_ms is None


def test_an_authorization_id_equal_to_the_user_is_taken() -> None:
    srv = server()
    srv.evaluate(b"bob\0bob\0b:o:b")
    assert srv.principal == "User:bob"


@pytest.mark.parametrize(("token", "reason"), [
    (b"\0alice\0wrong", "Invalid username or password"),
    (b"\0mallory\0alice-secret", "Invalid username or password"),
    (b"bob\0alice\0alice-secret", "authorization id that is different from username"),
    (b"\0alice", "expected 3 tokens"),
    (b"\0\0pw", "username not specified"),
    (b"\0alice\0", "password not specified"),
    (b"\0al\xffice\0pw", "not UTF-8"),
    (b"\0alice\0" + b"x" * 5000, "too long"),
])
def test_refusals(token: bytes, reason: str) -> None:
    srv = server()
    with pytest.raises(AuthenticationFailed, match=reason):
        srv.evaluate(token)
    assert not srv.complete


def test_one_message_only() -> None:
    srv = server()
    srv.evaluate(b"\0alice\0alice-secret")
    with pytest.raises(AuthenticationFailed):
        srv.evaluate(b"\0alice\0alice-secret")


def test_the_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("# operators\nalice:alice-secret\n\nbob:b:o:b\n")
    path.chmod(0o600)
    assert load_plain_credentials(path) == USERS
    path.chmod(0o640)
    with pytest.raises(ValueError, match="readable by others"):
        load_plain_credentials(path)
    path.chmod(0o600)
    path.write_text("alice:1\nalice:2\n")
    with pytest.raises(ValueError, match="line 2: user 'alice' is listed twice"):
        load_plain_credentials(path)
    path.write_text("carol\n")
    with pytest.raises(ValueError, match="line 1: expected user:password"):
        load_plain_credentials(path)


def test_without_a_file_plain_checks_the_scram_credentials() -> None:
    stored = {("alice", "SCRAM-SHA-256"): scram.derive("SCRAM-SHA-256", "pw", b"s" * 16, 4096),
              ("bob", "SCRAM-SHA-512"): scram.derive("SCRAM-SHA-512", "pw2", b"t" * 16, 4096)}
    auth = Authenticators(BrokerConfig(), lambda user, mech: stored.get((user, mech)))
    assert auth.plain_check("alice", "pw")
    assert auth.plain_check("bob", "pw2")
    assert not auth.plain_check("alice", "pw2")
    assert not auth.plain_check("carol", "pw")
    srv = auth.new_server("PLAIN")
    srv.evaluate(b"\0bob\0pw2")
    assert srv.principal == "User:bob"


def test_oauthbearer_without_keys_is_not_offered() -> None:
    auth = Authenticators(BrokerConfig(), lambda user, mech: None)
    with pytest.raises(AuthenticationFailed, match="not configured"):
        auth.new_server("OAUTHBEARER")
