"""kcat (librdkafka 2.0.2, Debian's package): metadata, produce, consume."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from compat_tests.harness import BrokerProcess

pytestmark = pytest.mark.compat

KCAT = shutil.which("kcat")


@pytest.fixture(autouse=True)
def _require_kcat() -> None:
    # ./dev test installs kcat when it runs as root; elsewhere say why these fail.
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat); ./dev test installs it as root")


def kcat(broker: BrokerProcess, *args: str, stdin: str | None = None, timeout: float = 30) -> str:
    result = subprocess.run(
        [KCAT or "kcat", "-b", broker.bootstrap, *args],
        input=stdin, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, f"kcat {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produces_and_consumes(broker: BrokerProcess, codec: str) -> None:
    topic = f"kcat-{codec}-{uuid.uuid4().hex[:6]}"
    lines = [f"key{i}:value {i}" for i in range(100)]
    kcat(broker, "-P", "-t", topic, "-K:", "-z", codec, stdin="\n".join(lines) + "\n")
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-K:", "-f", "%k:%s@%o\\n")
    assert out.splitlines() == [f"{line}@{i}" for i, line in enumerate(lines)]


def test_kcat_lists_metadata(broker: BrokerProcess) -> None:
    topic = f"kcat-meta-{uuid.uuid4().hex[:6]}"
    kcat(broker, "-P", "-t", topic, stdin="x\n")
    out = kcat(broker, "-L", "-J")
    meta = json.loads(out)
    assert [b["id"] for b in meta["brokers"]] == [1]
    names = {t["topic"]: t for t in meta["topics"]}
    assert topic in names
    assert names[topic]["partitions"][0]["leader"] == 1


def test_kcat_reads_from_an_offset_and_with_headers(broker: BrokerProcess) -> None:
    topic = f"kcat-off-{uuid.uuid4().hex[:6]}"
    kcat(broker, "-P", "-t", topic, "-H", "trace=abc", stdin="\n".join(str(i) for i in range(10)) + "\n")
    out = kcat(broker, "-C", "-t", topic, "-o", "7", "-e", "-f", "%s %h\\n")
    assert out.splitlines() == ["7 trace=abc", "8 trace=abc", "9 trace=abc"]
