"""The WALRUS-NODE challenge and response, as pure functions."""

from __future__ import annotations

import pytest

from broker.security import node_identity as ni

pytestmark = pytest.mark.unit

KEY = ni.derive_key("the-cluster-secret-0123456789")


def test_a_proof_made_with_the_key_passes() -> None:
    client, server = ni.new_nonce(), ni.new_nonce()
    node_id, parsed = ni.parse_first_message(ni.first_message(3, client))
    assert (node_id, parsed) == (3, client)
    ni.check_proof(KEY, 3, client, server, ni.proof(KEY, 3, client, server))


@pytest.mark.parametrize("change", ["key", "node", "server nonce", "client nonce"])
def test_a_proof_for_anything_else_is_refused(change: str) -> None:
    client, server = ni.new_nonce(), ni.new_nonce()
    answer = ni.proof(KEY, 3, client, server)
    key, node_id = KEY, 3
    if change == "key":
        key = ni.derive_key("another-secret-0123456789")
    elif change == "node":
        node_id = 4
    elif change == "server nonce":
        server = ni.new_nonce()  # an answer replayed on another connection
    else:
        client = ni.new_nonce()
    with pytest.raises(ni.IdentityRefused):
        ni.check_proof(key, node_id, client, server, answer)


def test_the_identity_key_is_not_the_secret_itself() -> None:
    assert KEY != b"the-cluster-secret-0123456789" and len(KEY) == 32


@pytest.mark.parametrize("data", [b"", b"n=1", b"n=x,r=" + b"0" * 64, b"n=1,r=" + b"0" * 63,
                                  b"n=1,r=" + b"0" * 64 + b"\n", b"n=99999999999,r=" + b"0" * 64])
def test_malformed_first_messages_are_refused(data: bytes) -> None:
    with pytest.raises(ni.IdentityRefused):
        ni.parse_first_message(data)
