"""`walrus-broker`: run one node.

With no arguments it is a one-node cluster with its data in ./walrus-data, listening on
127.0.0.1:9092. Every flag can also be set in a TOML file (--config) or as a WALRUS_*
environment variable (WALRUS_DATA_DIR, WALRUS_NODE_ID, ...); flags win over the
environment, which wins over the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from broker import __version__
from broker.config import BrokerConfig, ConfigError, build_config

log = logging.getLogger("walrus")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="walrus-broker",
        description="A Kafka-compatible message broker. No arguments: a one-node cluster "
        "in ./walrus-data on 127.0.0.1:9092.",
    )
    p.add_argument("--version", action="version", version=f"walrus-broker {__version__}")
    p.add_argument("--config", type=Path, help="TOML file with any of the settings below")
    p.add_argument("--node-id", type=int, dest="node_id", help="this node's id (default 1)")
    p.add_argument("--listen", help="HOST:PORT for Kafka clients (default 127.0.0.1:9092)")
    p.add_argument("--advertise", help="HOST:PORT told to clients (default: --listen)")
    p.add_argument("--data-dir", dest="data_dir", help="data directory (default ./walrus-data)")
    p.add_argument("--raft", help="HOST:PORT for Raft traffic between nodes")
    p.add_argument("--peers", help="the other nodes: ID@HOST:RAFTPORT,...")
    p.add_argument("--rack", help="this node's rack, for replica placement")
    p.add_argument(
        "--num-partitions",
        type=int,
        dest="num_partitions",
        help="partitions of an automatically created topic (default 1)",
    )
    p.add_argument(
        "--io-backend",
        dest="io_backend",
        choices=("auto", "io_uring", "posix"),
        help="how segment files are written (default auto)",
    )
    p.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING... (default INFO)")
    return p


def parse_config(argv: list[str] | None = None) -> BrokerConfig:
    args = vars(_parser().parse_args(argv))
    config_file = args.pop("config")
    return build_config(args, config_file=config_file)


def _install_event_loop_policy() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _run(config: BrokerConfig) -> None:
    from broker.node import Node

    node = Node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await node.stop()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"walrus-broker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    loop_name = _install_event_loop_policy()
    log.info(
        "walrus-broker %s starting (node %d, event loop %s)", __version__, config.node_id, loop_name
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
