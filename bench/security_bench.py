"""Produce and consume throughput over SASL_SSL as a ratio to PLAINTEXT, same broker,
same run.

One Walrus node with a PLAINTEXT and a SASL_SSL listener (SCRAM-SHA-512, TLS 1.3 with
the default ciphers). confluent-kafka writes 1 KiB records (acks=1, one partition) and
reads them back, taking turns between the two listeners for several rounds so load from
other processes hits both alike; medians are compared.

    .venv/bin/python bench/security_bench.py [--quick]

The last line is `RESULT security produce_ratio=<sasl_ssl/plaintext> consume_ratio=<...>
broker_produce_ratio=<...> broker_consume_ratio=<...>`. The first two are throughput;
the broker ratios compare the broker process's CPU time per record (plaintext / TLS),
which is what TLS costs the broker alone when client and broker share the machine's
cores. Goal: throughput ratios >= 0.7.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import broker_bench
import confluent_kafka

from compat_tests.secure_broker import start_secure_broker

SIZE = 1024


def produce(conf: dict[str, Any], topic: str, count: int) -> float:
    """Records a second (acks=1, broker_bench's producer)."""
    return broker_bench.produce(conf["bootstrap.servers"], topic, count, SIZE, "1",
                                client=conf).msgs_per_s


def consume(conf: dict[str, Any], topic: str, count: int) -> float:
    """Records a second, reading the partition from its start."""
    consumer = confluent_kafka.Consumer({
        **conf, "group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False,
        "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20,
        "fetch.wait.max.ms": 10,
    })
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    seen = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 120
    while seen < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=min(10_000, count - seen), timeout=1.0):
            if msg.error() is None:
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    if seen < count:
        raise RuntimeError(f"consumed {seen} of {count}")
    return seen / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (~20 s)")
    args = parser.parse_args()
    count = 30_000 if args.quick else 100_000
    rounds = 3 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="walrus-security-bench-") as workdir:
        broker = start_secure_broker(Path(workdir))
        try:
            sides = {
                "PLAINTEXT": broker.confluent("PLAINTEXT"),
                "SASL_SSL": broker.confluent("SASL_SSL", "SCRAM-SHA-512", "alice"),
            }
            figures: dict[str, dict[str, list[float]]] = {
                side: {"produce": [], "consume": [], "produce_cpu": [], "consume_cpu": []}
                for side in sides}
            assert broker.process.process is not None
            pid = broker.process.process.pid
            for n in range(rounds):
                order = list(sides) if n % 2 == 0 else list(reversed(sides))
                for side in order:
                    topic = f"bench-{side.lower()}-{n}"
                    for kind, run in (("produce", produce), ("consume", consume)):
                        before = cpu_seconds(pid)
                        figures[side][kind].append(run(sides[side], topic, count))
                        figures[side][f"{kind}_cpu"].append((cpu_seconds(pid) - before) / count)
                print(f"round {n + 1}: " + ", ".join(
                    f"{side} produce {figures[side]['produce'][-1]:,.0f}/s "
                    f"consume {figures[side]['consume'][-1]:,.0f}/s" for side in order), flush=True)
        finally:
            broker.process.stop()
    medians = {side: {kind: statistics.median(v) for kind, v in kinds.items()}
               for side, kinds in figures.items()}
    for side, kinds in medians.items():
        print(f"{side:<10} produce {kinds['produce']:>10,.0f} rec/s "
              f"({kinds['produce'] * SIZE / 1e6:.0f} MB/s)  consume {kinds['consume']:>10,.0f} rec/s")
    for side, kinds in medians.items():
        print(f"{side:<10} broker CPU per record: produce {kinds['produce_cpu'] * 1e6:.2f} us, "
              f"consume {kinds['consume_cpu'] * 1e6:.2f} us")
    tls, plain = medians["SASL_SSL"], medians["PLAINTEXT"]
    print(f"RESULT security produce_ratio={tls['produce'] / plain['produce']:.2f} "
          f"consume_ratio={tls['consume'] / plain['consume']:.2f} "
          f"broker_produce_ratio={plain['produce_cpu'] / tls['produce_cpu']:.2f} "
          f"broker_consume_ratio={plain['consume_cpu'] / tls['consume_cpu']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
