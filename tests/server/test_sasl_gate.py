"""What a connection on a SASL listener may send before it authenticates, and once its
session has expired; and each listener's view of the brokers."""

import pytest

from broker.coordination.model import Broker
from broker.handlers.told_brokers import ToldBrokers
from broker.server.connection import ClientInfo
from broker.server.sasl_gate import refusal

pytestmark = pytest.mark.unit


def frame(api_key: int) -> bytes:
    return api_key.to_bytes(2, "big") + b"\x00\x00rest"


def test_before_authentication_only_the_sasl_apis_and_api_versions() -> None:
    client = ClientInfo(1, "h", 1, security_protocol="SASL_SSL", authenticated=False)
    for served in (17, 18, 36):
        assert refusal(client, frame(served), 0.0) is None
    assert refusal(client, frame(3), 0.0) == "api key 3 sent before SASL authentication"
    assert refusal(client, b"\x00", 0.0) == "api key -1 sent before SASL authentication"


def test_an_expired_session_may_only_reauthenticate() -> None:
    client = ClientInfo(1, "h", 1, session_expires_at=100.0)
    assert refusal(client, frame(0), 99.9) is None
    assert refusal(client, frame(0), 100.0) == "its SASL session expired and was not re-authenticated"
    assert refusal(client, frame(17), 100.0) is None
    assert refusal(client, frame(36), 100.0) is None


def test_a_plaintext_connection_is_never_held_back() -> None:
    assert refusal(ClientInfo(1, "h", 1), frame(0), 1e12) is None


def _broker(node_id: int, endpoints: dict[str, tuple[str, int]]) -> Broker:
    return Broker(node_id, f"10.0.0.{node_id}", 9092, None, None, 0, 0, 1, endpoints)


def test_each_listener_tells_its_own_addresses_and_leaves_out_brokers_without_it() -> None:
    told = ToldBrokers([
        _broker(1, {"CLIENT": ("kafka1", 9093), "INTERNAL": ("10.0.0.1", 9092)}),
        _broker(2, {"INTERNAL": ("10.0.0.2", 9092)}),
        _broker(3, {}),  # registered before listeners had names: one address for all
    ], stale=False, self_id=1)
    client_view = told.on_listener("CLIENT")
    assert [(b.node_id, b.host, b.port) for b in client_view.brokers] == [
        (1, "kafka1", 9093), (3, "10.0.0.3", 9092)]
    assert client_view.may_lead(1) and not client_view.may_lead(2)
    assert [b.port for b in told.on_listener("INTERNAL").brokers] == [9092, 9092, 9092]


def test_endpoints_survive_a_snapshot_and_old_snapshots_load() -> None:
    broker = _broker(1, {"CLIENT": ("kafka1", 9093)})
    assert Broker.from_dict(broker.to_dict()) == broker
    old = broker.to_dict()
    del old["endpoints"]
    assert Broker.from_dict(old).endpoints == {}
