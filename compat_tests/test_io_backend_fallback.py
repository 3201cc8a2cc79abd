"""A broker on a host whose io_uring binding kills any process that sets up a ring (the
liburing 2026 wheels on a CPU without AVX-512 die with SIGILL) still starts and serves:
the probe's child takes the crash, the broker writes with POSIX and logs why."""

from __future__ import annotations

from pathlib import Path

import kafka
import pytest

from compat_tests.harness import BrokerProcess
from tests.log.fake_liburing import write_fake_liburing

pytestmark = pytest.mark.compat


def test_broker_whose_io_uring_binding_crashes_serves_with_posix(tmp_path: Path) -> None:
    fake = write_fake_liburing(tmp_path / "fake", "sigill")
    broker = BrokerProcess(tmp_path / "data", env={"PYTHONPATH": str(fake)})
    broker.start()
    try:
        producer = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        for i in range(3):
            producer.send("fallback", key=b"k", value=b"posix %d" % i).get(30)
        producer.close(10)
        consumer = kafka.KafkaConsumer(
            "fallback",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
        )
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 3:
                break
        consumer.close()
        assert values == [b"posix 0", b"posix 1", b"posix 2"]
        assert broker.process is not None and broker.process.poll() is None
    finally:
        assert broker.stop() == 0
    log = broker.log_path.read_text()
    told = [line for line in log.splitlines() if "log io backend: " in line]
    assert len(told) == 1, log
    assert "WARNING walrus.log: log io backend: posix (io_uring binding crashed (SIGILL) " \
           "in a probe process: liburing 0.0+fake-sigill at " in told[0]
    assert ": io backend posix" in log
