"""SCRAM credentials in the replicated metadata, driven without Raft: upsert, delete,
refusals, snapshots, and the accessor a SCRAM login looks users up with."""

from __future__ import annotations

import json
from typing import Any

import pytest
from scram_client import ScramClient

from broker.coordination.commands import (
    REPEATABLE_KINDS,
    DeleteScramCredential,
    UpsertScramCredential,
    command_from_dict,
    command_to_dict,
)
from broker.coordination.errors import MetadataError, Refusal
from broker.coordination.results import Applied
from broker.coordination.scram_credentials import upsert_for_password
from broker.coordination.state import ClusterState
from broker.security import scram

pytestmark = pytest.mark.unit

T0 = 1_000_000
SHA256, SHA512 = "SCRAM-SHA-256", "SCRAM-SHA-512"


def upsert(user: str, mechanism: str = SHA256, password: str = "pw", iterations: int = 4096,
           salt: bytes = b"salt-0123") -> UpsertScramCredential:
    c = scram.derive(mechanism, password, salt, iterations)
    return UpsertScramCredential(user, mechanism, c.salt, c.stored_key, c.server_key, c.iterations)


def refused(result: object, error: MetadataError) -> bool:
    return isinstance(result, Refusal) and result.error == error


def test_upsert_stores_what_a_login_checks_and_replaces_per_mechanism() -> None:
    state = ClusterState()
    assert isinstance(state.apply(upsert("alice"), T0), Applied)
    assert isinstance(state.apply(upsert("alice", SHA512), T0), Applied)
    assert state.scram_credential("alice", SHA256) == scram.derive(SHA256, "pw", b"salt-0123", 4096)
    assert state.apply(upsert("alice", password="new", iterations=8192), T0).version == 3
    assert state.scram_credential("alice", SHA256) == scram.derive(SHA256, "new", b"salt-0123", 8192)
    assert state.scram_credential("alice", SHA512) == scram.derive(SHA512, "pw", b"salt-0123", 4096)
    assert state.scram_credential("bob", SHA256) is None
    assert sorted(state.scram_credentials()) == [("alice", SHA256), ("alice", SHA512)]


def test_a_stored_credential_lets_the_user_log_in() -> None:
    state = ClusterState()
    state.apply(command_to_dict(upsert("alice", SHA512, "secret")), T0)  # as Raft carries it
    server = scram.ScramServer(SHA512, lambda user: state.scram_credential(user, SHA512))
    client = ScramClient(SHA512, "alice", "secret")
    assert client.server_verified(server.evaluate(client.final(server.evaluate(client.first()))))


def test_upsert_is_repeatable_and_delete_is_not() -> None:
    state = ClusterState()
    once = state.apply(upsert("alice"), T0)
    snapshot = json.loads(state.to_snapshot())
    assert isinstance(state.apply(upsert("alice"), T0), type(once))
    again = json.loads(state.to_snapshot())
    assert again.pop("version") == snapshot.pop("version") + 1 and again == snapshot
    assert UpsertScramCredential.KIND in REPEATABLE_KINDS
    # A retried delete would answer RESOURCE_NOT_FOUND for a delete that happened.
    assert DeleteScramCredential.KIND not in REPEATABLE_KINDS


def test_delete_removes_one_mechanism_and_refuses_what_is_not_there() -> None:
    state = ClusterState()
    state.apply(upsert("alice"), T0)
    state.apply(upsert("alice", SHA512), T0)
    assert isinstance(state.apply(DeleteScramCredential("alice", SHA256), T0), Applied)
    assert state.scram_credential("alice", SHA256) is None
    assert state.scram_credential("alice", SHA512) is not None
    before = state.to_snapshot()
    missing = state.apply(DeleteScramCredential("alice", SHA256), T0)
    assert refused(missing, MetadataError.RESOURCE_NOT_FOUND)
    assert refused(state.apply(DeleteScramCredential("nobody", SHA512), T0), MetadataError.RESOURCE_NOT_FOUND)
    assert state.to_snapshot() == before


def test_readers_keep_the_mapping_they_took() -> None:
    state = ClusterState()
    state.apply(upsert("alice"), T0)
    taken = state.scram_credentials()
    state.apply(upsert("bob"), T0)
    state.apply(DeleteScramCredential("alice", SHA256), T0)
    assert list(taken) == [("alice", SHA256)]
    assert list(state.scram_credentials()) == [("bob", SHA256)]
    with pytest.raises(TypeError):
        taken[("eve", SHA256)] = taken[("alice", SHA256)]  # type: ignore[index]


def good() -> dict[str, Any]:
    return command_to_dict(upsert("alice"))


@pytest.mark.parametrize("change, error", [
    ({"user": ""}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"user": 7}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"mechanism": "SCRAM-SHA-1"}, MetadataError.UNSUPPORTED_SASL_MECHANISM),
    ({"mechanism": None}, MetadataError.UNSUPPORTED_SASL_MECHANISM),
    ({"iterations": 4095}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"iterations": 16385}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"iterations": "4096"}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"iterations": True}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"salt": ""}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"stored_key": "00" * 31}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"server_key": "00" * 64}, MetadataError.UNACCEPTABLE_CREDENTIAL),
    ({"salt": "not hex"}, MetadataError.UNKNOWN_COMMAND),
    ({"salt": 12}, MetadataError.UNKNOWN_COMMAND),
    ({"password": "pw"}, MetadataError.UNKNOWN_COMMAND),
])
def test_malformed_upserts_are_refused_and_change_nothing(change: dict[str, Any], error: MetadataError) -> None:
    state = ClusterState()
    before = state.to_snapshot()
    assert refused(state.apply({**good(), **change}, T0), error)
    assert json.loads(state.to_snapshot()) | {"clock_ms": 0} == json.loads(before)


def test_a_hand_built_upsert_with_wrong_types_is_refused() -> None:
    state = ClusterState()
    bad = UpsertScramCredential("alice", SHA256, "salt", b"k" * 32, b"k" * 32, 4096)  # type: ignore[arg-type]
    assert refused(state.apply(bad, T0), MetadataError.UNACCEPTABLE_CREDENTIAL)
    assert refused(state.apply(DeleteScramCredential(["a"], SHA256), T0),  # type: ignore[arg-type]
                   MetadataError.UNACCEPTABLE_CREDENTIAL)
    assert len(state.scram) == 0


def test_commands_travel_as_json() -> None:
    for command in (upsert("a,b=c"), DeleteScramCredential("alice", SHA512)):
        encoded = json.loads(json.dumps(command_to_dict(command)))
        assert command_from_dict(encoded) == command
    assert "pw" not in json.dumps(command_to_dict(upsert("alice", password="pw")))


def test_snapshot_round_trip_keeps_credentials_and_their_order_is_canonical() -> None:
    a, b = ClusterState(), ClusterState()
    users = [("zed", SHA512), ("alice", SHA256), ("alice", SHA512), ("bob", SHA256)]
    for user, mechanism in users:
        a.apply(upsert(user, mechanism), T0)
    for user, mechanism in reversed(users):
        b.apply(upsert(user, mechanism), T0)
    assert a.to_snapshot() == b.to_snapshot()
    restored = ClusterState.from_snapshot(a.to_snapshot())
    assert restored.to_snapshot() == a.to_snapshot()
    assert dict(restored.scram_credentials()) == dict(a.scram_credentials())
    assert restored.scram_credential("zed", SHA512) == scram.derive(SHA512, "pw", b"salt-0123", 4096)
    # and it goes on like the original
    for state in (a, restored):
        assert isinstance(state.apply(DeleteScramCredential("bob", SHA256), T0), Applied)
    assert restored.to_snapshot() == a.to_snapshot()


def test_a_snapshot_from_before_credentials_loads_with_none() -> None:
    body = json.loads(ClusterState().to_snapshot())
    del body["scram_credentials"]
    state = ClusterState.from_snapshot(json.dumps(body).encode())
    assert len(state.scram) == 0 and state.scram_credential("alice", SHA256) is None


def test_a_credentials_file_becomes_upserts_with_fresh_salts() -> None:
    state = ClusterState()
    lines = scram.parse_credentials_file("admin:SCRAM-SHA-512:s3cret\nadmin:SCRAM-SHA-256:s3cret\n")
    commands = [upsert_for_password(user, mechanism, password) for user, mechanism, password in lines]
    assert commands[0].salt != commands[1].salt and len(commands[0].salt) == 32
    assert "s3cret" not in json.dumps([command_to_dict(c) for c in commands])
    for command in commands:
        assert isinstance(state.apply(command, T0), Applied)
    server = scram.ScramServer(SHA512, lambda user: state.scram_credential(user, SHA512))
    client = ScramClient(SHA512, "admin", "s3cret")
    assert client.server_verified(server.evaluate(client.final(server.evaluate(client.first()))))
    with pytest.raises(ValueError, match="iterations"):
        upsert_for_password("admin", SHA256, "pw", iterations=100)
