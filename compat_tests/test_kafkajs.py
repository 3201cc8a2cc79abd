"""KafkaJS 2.2.4 (from the npm registry, compat_tests/kafkajs) against Walrus: admin
create/describe/delete, an idempotent acks=all producer with gzip and plain batches,
keys, headers and empty values, a consumer group of two members that reads every record
exactly once, and the offsets it commits. Against one broker and against a three-node
cluster bootstrapped from a node that leads nothing in particular."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from compat_tests.cluster import Cluster
from compat_tests.harness import BrokerProcess
from compat_tests.secure_broker import USERS, SecureBroker, start_secure_broker

pytestmark = [pytest.mark.compat, pytest.mark.slow]

HERE = Path(__file__).parent / "kafkajs"
NODE = shutil.which("node")
COUNT = 400


@pytest.fixture(scope="module")
def kafkajs() -> Path:
    # ./dev test installs the package (npm ci); without node or npm these tests fail and
    # say why rather than pass unseen.
    if NODE is None:
        pytest.fail("node is not installed; ./dev test installs nodejs and npm as root")
    if not (HERE / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {HERE} (./dev test does)")
    return HERE / "scenario.js"


def run_scenario(script: Path, bootstrap: str, count: int = COUNT,
                 security: dict[str, Any] | None = None) -> dict[str, Any]:
    topic = f"kafkajs-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "KAFKAJS_SECURITY": json.dumps(security)} if security else None
    result = subprocess.run(
        [NODE or "node", str(script), bootstrap, topic, str(count)],
        capture_output=True, text=True, timeout=150, env=env,
    )
    assert result.returncode == 0, f"the KafkaJS scenario failed:\n{result.stderr[-4000:]}"
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def check(out: dict[str, Any], count: int = COUNT) -> None:
    assert out["created"] is True
    assert out["partitions"] == [0, 1, 2, 3]
    sent = {(m["partition"], m["key"], m["value"], m["n"]) for m in out["sent"]}
    assert len(sent) == count
    consumed = Counter((m["partition"], m["key"], m["value"], m["n"]) for m in out["consumed"])
    twice = [m for m, n in consumed.items() if n > 1]
    print(f"KafkaJS: sent {len(sent)}, consumed {sum(consumed.values())} "
          f"by members {sorted(Counter(m['member'] for m in out['consumed']).items())}, "
          f"committed {out['committed']}")
    assert set(consumed) == sent and not twice, (len(set(consumed) ^ sent), twice[:5])
    # Offsets are dense per partition and follow the order the producer sent.
    for partition in range(4):
        read = [m for m in out["consumed"] if m["partition"] == partition]
        assert [int(m["offset"]) for m in read] == list(range(len(read)))
        assert [int(m["n"]) for m in read] == sorted(int(m["n"]) for m in read)
    highs = {h["partition"]: int(h["high"]) for h in out["highs"]}
    assert highs == {p: count // 4 for p in range(4)}
    committed = {c["partition"]: int(c["offset"]) for c in out["committed"]}
    assert committed == highs
    assert out["after_delete"] is False


def test_kafkajs_end_to_end_against_one_broker(kafkajs: Path, broker: BrokerProcess) -> None:
    check(run_scenario(kafkajs, broker.bootstrap))


def test_kafkajs_end_to_end_against_a_three_node_cluster(kafkajs: Path, tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.wait_for_brokers(3)
        check(run_scenario(kafkajs, cluster.nodes[2].bootstrap))


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Any:
    broker = start_secure_broker(tmp_path_factory.mktemp("kafkajs-secure"))
    try:
        yield broker
    finally:
        broker.process.stop()


SECURE_CASES = [
    ("SASL_SSL", "scram-sha-256"),
    ("SASL_PLAINTEXT", "scram-sha-512"),
    ("SASL_PLAINTEXT", "plain"),
    ("SASL_PLAINTEXT", "oauthbearer"),
    ("SSL", None),
]


@pytest.mark.parametrize("case", SECURE_CASES, ids=lambda c: "-".join(p for p in c if p))
def test_kafkajs_over_ssl_and_sasl(kafkajs: Path, secure: SecureBroker,
                                   case: tuple[str, str | None]) -> None:
    protocol, mechanism = case
    security: dict[str, Any] = {}
    if "SSL" in protocol:
        cert, key = secure.tls.client_cert("alice")
        security.update(ca=str(secure.tls.ca_cert), cert=str(cert), key=str(key))
    if mechanism == "oauthbearer":
        security["sasl"] = {"mechanism": mechanism, "token": secure.token("alice")}
    elif mechanism is not None:
        security["sasl"] = {"mechanism": mechanism, "username": "alice", "password": USERS["alice"]}
    check(run_scenario(kafkajs, secure.bootstrap(protocol), count=100, security=security), count=100)
