"""SCRAM's server side, fed the messages a client sends: the RFC vectors, full exchanges
for both hashes, and everything it must refuse."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scram_client import ScramClient

from broker.security import scram
from broker.security.sasl_mechanism import AuthenticationFailed, SaslServer
from broker.security.scram import ScramServer

pytestmark = pytest.mark.unit

SALT = b"0123456789abcdef"
MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]


def server(mechanism: str = "SCRAM-SHA-256", password: str = "pencil", user: str = "user",
           nonce: str = "s3rv3r") -> ScramServer:
    credential = scram.derive(mechanism, password, SALT, 4096)
    return ScramServer(mechanism, {user: credential}.get, nonce=lambda: nonce)


def refused(srv: ScramServer, token: bytes) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        srv.evaluate(token)
    assert not srv.complete
    return str(caught.value)


# ------------------------------------------------------------------------ RFC vectors


def test_rfc7677_sha256_exchange_byte_for_byte() -> None:
    credential = scram.derive("SCRAM-SHA-256", "pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    srv = ScramServer("SCRAM-SHA-256", {"user": credential}.get,
                      nonce=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert srv.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert not srv.complete
    final = srv.evaluate(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                         b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert srv.complete and srv.principal == "User:user" and srv.expires_at_ms is None


def test_rfc5802_sha1_exchange_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    # The exchange logic is hash-agnostic: with SHA-1 behind a mechanism name it must
    # reproduce RFC 5802's own example.
    monkeypatch.setitem(scram.MECHANISMS, "SCRAM-SHA-1", "sha1")
    credential = scram.derive("SCRAM-SHA-1", "pencil", base64.b64decode("QSXCR+Q6sek8bf92"), 4096)
    srv = ScramServer("SCRAM-SHA-1", {"user": credential}.get, nonce=lambda: "3rfcNHYJY1ZVvWVs7j")
    assert srv.evaluate(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL") == (
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    final = srv.evaluate(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
    assert final == b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="


def test_the_server_is_a_sasl_server() -> None:
    srv: SaslServer = server()
    assert srv.mechanism == "SCRAM-SHA-256" and not srv.complete


# ------------------------------------------------------------------- full exchanges


@pytest.mark.parametrize("mechanism", MECHS)
@pytest.mark.parametrize("user", ["alice", "a,b=c", "=2C", "Zoë 用户"])
def test_full_exchange_for_both_hashes(mechanism: str, user: str) -> None:
    srv = server(mechanism, "s3cret:with,odd=chars", user)
    client = ScramClient(mechanism, user, "s3cret:with,odd=chars")
    server_first = srv.evaluate(client.first())
    assert client.server_verified(srv.evaluate(client.final(server_first)))
    assert srv.complete and srv.principal == f"User:{user}"


def test_an_authzid_equal_to_the_user_is_accepted() -> None:
    srv, client = server(), ScramClient("SCRAM-SHA-256", "user", "pencil", authzid="user")
    assert client.server_verified(srv.evaluate(client.final(srv.evaluate(client.first()))))


def test_a_client_that_could_bind_but_does_not_is_accepted() -> None:
    srv, client = server(), ScramClient("SCRAM-SHA-256", "user", "pencil", gs2_flag="y")
    assert client.server_verified(srv.evaluate(client.final(srv.evaluate(client.first()))))


@pytest.mark.parametrize("extensions", [",tokenauth=false", ",future=x,other=y"])
def test_extensions_other_than_a_token_login_are_ignored(extensions: str) -> None:
    srv, client = server(), ScramClient("SCRAM-SHA-256", "user", "pencil", extensions=extensions)
    assert client.server_verified(srv.evaluate(client.final(srv.evaluate(client.first()))))


def test_each_exchange_gets_a_fresh_server_nonce() -> None:
    credential = scram.derive("SCRAM-SHA-256", "pencil", SALT, 4096)
    nonces = {ScramServer("SCRAM-SHA-256", {"user": credential}.get).evaluate(b"n,,n=user,r=abc")
              .split(b",")[0] for _ in range(20)}
    assert len(nonces) == 20


# ------------------------------------------------------------------------- refusals


def test_wrong_password_and_unknown_user_fail_alike_and_only_at_the_proof() -> None:
    messages = []
    for user, password in [("user", "wrong"), ("nobody", "pencil")]:
        srv, client = server(), ScramClient("SCRAM-SHA-256", user, password)
        server_first = srv.evaluate(client.first())
        assert server_first.startswith(b"r=c1i3nt-n0nces3rv3r,s=") and server_first.endswith(b",i=4096")
        messages.append(refused(srv, client.final(server_first)))
    assert messages[0] == messages[1] == (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256")


def test_an_unknown_user_sees_the_same_salt_every_time() -> None:
    first = [server().evaluate(ScramClient("SCRAM-SHA-256", name, "x").first()) for name in ("ghost", "ghost", "spook")]
    assert first[0] == first[1] != first[2]


def test_a_credential_this_mechanism_cannot_check_is_treated_as_absent() -> None:
    sha512 = scram.derive("SCRAM-SHA-512", "pencil", SALT, 4096)
    srv = ScramServer("SCRAM-SHA-256", {"user": sha512}.get)
    client = ScramClient("SCRAM-SHA-256", "user", "pencil")
    assert "invalid credentials" in refused(srv, client.final(srv.evaluate(client.first())))


def test_an_authzid_other_than_the_user_is_refused() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", authzid="admin")
    assert "authorization id" in refused(server(), client.first())


@pytest.mark.parametrize("first, reason", [
    (b"p=tls-unique,,n=user,r=abc", "channel binding"),
    (b"n,,n=user,r=abc,tokenauth=true", "delegation tokens"),
    (b"n,,n=user,r=abc,tokenauth=TRUE", "delegation tokens"),
    (b"n,,m=ext,n=user,r=abc", "mandatory extensions"),
    (b"", "malformed"),
    (b"n,,", "malformed"),
    (b"x,,n=user,r=abc", "malformed"),
    (b"n,b=user,n=user,r=abc", "malformed"),
    (b"n,,n=user", "malformed"),
    (b"n,,r=abc,n=user", "malformed"),
    (b"n,,n=,r=abc", "empty name"),
    (b"n,,n=us=er,r=abc", "bad escape"),
    (b"n,,n=user=2,r=abc", "bad escape"),
    (b"n,,n=user,r=", "bad nonce"),
    (b"n,,n=user,r=a\x7fb", "bad nonce"),
    (b"n,,n=user,r=abc,=x", "bad extension"),
    (b"n,,n=user,r=abc,noequals", "bad extension"),
    (b"n,,n=\xff\xfe,r=abc", "not UTF-8"),
    (b"n,,n=us\x00er,r=abc", "NUL"),
    (b"n,,n=" + b"u" * 5000 + b",r=abc", "longer than"),
])
def test_malformed_or_refused_client_first(first: bytes, reason: str) -> None:
    srv = server()
    assert reason in refused(srv, first)
    # a failed exchange stays failed, even when the next message would be good
    assert "over" in refused(srv, ScramClient("SCRAM-SHA-256", "user", "pencil").first())


def answered(mechanism: str = "SCRAM-SHA-256") -> tuple[ScramServer, ScramClient, bytes]:
    srv, client = server(mechanism), ScramClient(mechanism, "user", "pencil")
    return srv, client, srv.evaluate(client.first())


def test_a_proof_for_another_nonce_is_refused() -> None:
    srv, client, server_first = answered()
    forged = client.final(server_first, nonce="c1i3nt-n0nceOTHER")
    assert "nonce" in refused(srv, forged)


def test_a_final_nonce_with_the_client_nonce_sent_twice_is_taken_as_kafka_takes_it() -> None:
    # librdkafka 2.0 (Debian 12's kcat) repeats its own nonce before the combined one;
    # Kafka checks only that the final nonce ends with the combined one.
    srv, client, server_first = answered()
    combined = dict(a.split("=", 1) for a in server_first.decode().split(","))["r"]
    final = client.final(server_first, nonce=client.client_nonce + combined)
    assert client.server_verified(srv.evaluate(final))
    assert srv.complete


def test_a_final_nonce_that_does_not_end_with_the_servers_is_refused() -> None:
    srv, client, server_first = answered()
    combined = dict(a.split("=", 1) for a in server_first.decode().split(","))["r"]
    assert "nonce" in refused(srv, client.final(server_first, nonce=combined + "x"))


def test_a_channel_binding_other_than_the_gs2_header_is_refused() -> None:
    srv, client, server_first = answered()
    bound = client.final(server_first, channel_binding=base64.b64encode(b"y,,").decode())
    assert "channel binding" in refused(srv, bound)


def test_a_proof_made_with_a_wrong_password_is_refused() -> None:
    srv, client, server_first = answered()
    assert "invalid credentials" in refused(srv, client.final(server_first, password=b"pencil2"))


def test_a_tampered_proof_is_refused() -> None:
    srv, client, server_first = answered()
    final = client.final(server_first)
    head, _, proof = final.rpartition(b",p=")
    flipped = bytearray(base64.b64decode(proof))
    flipped[0] ^= 1
    assert "invalid credentials" in refused(srv, head + b",p=" + base64.b64encode(bytes(flipped)))


def test_a_final_message_replayed_into_another_exchange_is_refused() -> None:
    srv, client, server_first = answered()
    final = client.final(server_first)
    srv.evaluate(final)
    credential = scram.derive("SCRAM-SHA-256", "pencil", SALT, 4096)
    other = ScramServer("SCRAM-SHA-256", {"user": credential}.get, nonce=lambda: "fresh")
    other.evaluate(client.first())
    assert "nonce" in refused(other, final)


def test_messages_out_of_order_are_refused() -> None:
    srv, client, server_first = answered()
    final = client.final(server_first)
    fresh = server()
    assert "malformed" in refused(fresh, final)  # a final message first
    assert "malformed" in refused(srv, client.first())  # the first message twice
    srv2, client2, server_first2 = answered()
    srv2.evaluate(client2.final(server_first2))
    assert "over" in refused(srv2, client2.final(server_first2))  # after success
    assert srv2.complete is False


@pytest.mark.parametrize("final", [
    b"c=biws,r=c1i3nt-n0nces3rv3r",
    b"r=c1i3nt-n0nces3rv3r,c=biws,p=AAAA",
    b"c=b!ws,r=c1i3nt-n0nces3rv3r,p=AAAA",
    b"c=biws,r=c1i3nt-n0nces3rv3r,p=not*base64",
    b"c=biws,r=c1i3nt-n0nces3rv3r,p=AAAA",
    b"c=biws,r=c1i3nt-n0nces3rv3r,p=" + base64.b64encode(bytes(33)),
    b"c=biws,r=c1i3nt-n0nces3rv3r,x,p=" + base64.b64encode(bytes(32)),
    b"c=biws,r=c1i3nt-n0nces3rv3r,p=" + b"A" * 5000,
    b"c=biws,r=c1i3nt-n0nces3rv3r\xff,p=AAAA",
])
def test_malformed_client_final(final: bytes) -> None:
    srv, _, _ = answered()
    refused(srv, final)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_fail_cleanly(first: bytes, second: bytes) -> None:
    srv = server()
    try:
        srv.evaluate(first)
        srv.evaluate(second)
    except AuthenticationFailed:
        return
    pytest.fail("random bytes authenticated")


# ---------------------------------------------------------------------- credentials


@pytest.mark.parametrize("mechanism, size", [("SCRAM-SHA-256", 32), ("SCRAM-SHA-512", 64)])
def test_a_credential_holds_keys_not_the_password(mechanism: str, size: int) -> None:
    credential = scram.derive(mechanism, "pencil", SALT, 4096)
    assert (len(credential.stored_key), len(credential.server_key), credential.salt) == (size, size, SALT)
    salted = scram.salted_password(scram.hash_name(mechanism), b"pencil", SALT, 4096)
    assert scram.credential_from_salted_password(mechanism, salted, SALT, 4096) == credential
    assert salted not in (credential.stored_key, credential.server_key)
    assert credential.stored_key.hex() not in repr(credential) and "4096" in repr(credential)


@pytest.mark.parametrize("iterations", [4095, 16385, 0, -1, True])
def test_iterations_outside_kafkas_bounds_are_refused(iterations: int) -> None:
    with pytest.raises(ValueError, match="iterations"):
        scram.derive("SCRAM-SHA-256", "pencil", SALT, iterations)


def test_a_salted_password_of_the_wrong_size_or_no_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        scram.credential_from_salted_password("SCRAM-SHA-256", bytes(31), SALT, 4096)
    with pytest.raises(ValueError, match="salt"):
        scram.credential_from_salted_password("SCRAM-SHA-256", bytes(32), b"", 4096)
    with pytest.raises(ValueError, match="mechanism"):
        scram.credential_from_salted_password("SCRAM-SHA-1", bytes(20), SALT, 4096)


def test_mechanism_codes_are_kafkas() -> None:
    assert scram.MECHANISMS_BY_CODE == {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}


# ------------------------------------------------------------ bootstrap credentials file


def test_credentials_file_lines_comments_and_blanks() -> None:
    text = "# admins\n\nalice:SCRAM-SHA-256:secret\n  bob:SCRAM-SHA-512:pa:ss#word  \r\n   # indented comment\n"
    assert scram.parse_credentials_file(text) == [
        ("alice", "SCRAM-SHA-256", "secret"), ("bob", "SCRAM-SHA-512", "pa:ss#word")]
    assert scram.parse_credentials_file("") == []


@pytest.mark.parametrize("line, reason", [
    ("alice:SCRAM-SHA-256", "expected user:MECHANISM:password"),
    ("alice", "expected user:MECHANISM:password"),
    (":SCRAM-SHA-256:secret", "empty user name"),
    ("alice:SCRAM-SHA-1:secret", "mechanism must be one of SCRAM-SHA-256, SCRAM-SHA-512"),
    ("alice:scram-sha-256:secret", "mechanism must be one of"),
    ("alice:SCRAM-SHA-256:", "empty password"),
])
def test_credentials_file_bad_lines_name_the_line_not_the_secret(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^line 3: {reason}") as caught:
        scram.parse_credentials_file(f"# c\nok:SCRAM-SHA-256:pw\n{line}\n")
    assert "secret" not in str(caught.value)
