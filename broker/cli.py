"""`walrus-broker`: run one node, or manage a running cluster's members.

With no arguments it is a one-node cluster with its data in ./walrus-data, listening on
127.0.0.1:9092. Every flag can also be set in a TOML file (--config) or as a WALRUS_*
environment variable (WALRUS_DATA_DIR, WALRUS_NODE_ID, ...); flags win over the
environment, which wins over the file.

`walrus-broker cluster status|add-node|remove-node --via HOST:RAFTPORT ...` speaks to a
running node's Raft port (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
from pathlib import Path

from broker import __version__
from broker.config import (
    BrokerConfig,
    ConfigError,
    Peer,
    build_config,
    parse_host_port,
    unknown_environment,
)
from broker.coordination.membership import (
    ClusterStatus,
    MembershipError,
    add_member,
    fetch_copies,
    fetch_status,
    remove_member,
)
from broker.coordination.raft_errors import RaftError
from broker.log.errors import LogStorageError
from broker.startup_checks import StartupError, check_before_start

log = logging.getLogger("walrus")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="walrus-broker",
        description="A Kafka-compatible message broker. No arguments: a one-node cluster "
        "in ./walrus-data on 127.0.0.1:9092. Cluster membership: walrus-broker cluster --help.",
    )
    p.add_argument("--version", action="version", version=f"walrus-broker {__version__}")
    p.add_argument("--config", type=Path, help="TOML file with any of the settings below")
    p.add_argument("--node-id", type=int, dest="node_id", help="this node's id (default 1)")
    p.add_argument("--listen", help="HOST:PORT for Kafka clients (default 127.0.0.1:9092)")
    p.add_argument("--advertise", help="HOST:PORT told to clients (default: --listen)")
    p.add_argument("--data-dir", dest="data_dir", help="data directory (default ./walrus-data)")
    p.add_argument("--raft", help="HOST:PORT for Raft traffic between nodes")
    p.add_argument("--peers", help="the other nodes: ID@HOST:RAFTPORT,...")
    p.add_argument(
        "--cluster-secret-file",
        dest="cluster_secret_file",
        help="file holding the secret all members share (needed with --peers; a node "
        "alone makes its own in DATA_DIR/cluster_secret)",
    )
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
    security = p.add_argument_group("listeners and security (docs/operations.md)")
    security.add_argument(
        "--listeners", help="NAME://HOST:PORT,... (replaces --listen; e.g. "
        "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://0.0.0.0:9093)")
    security.add_argument(
        "--advertised-listeners", dest="advertised_listeners",
        help="NAME://HOST:PORT,... told to clients of each listener (default: as it listens)")
    security.add_argument(
        "--listener-security-protocol-map", dest="listener_security_protocol_map",
        help="NAME:PROTOCOL,... with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL "
        "(default: each protocol's own name)")
    security.add_argument(
        "--inter-broker-listener-name", dest="inter_broker_listener_name",
        help="the listener other nodes use (default: the first)")
    security.add_argument(
        "--sasl-enabled-mechanisms", dest="sasl_enabled_mechanisms",
        help="mechanisms offered on SASL listeners, comma-separated (default PLAIN)")
    security.add_argument(
        "--sasl-plain-credentials-file", dest="sasl_plain_credentials_file",
        help="user:password lines that SASL PLAIN checks (mode 600)")
    security.add_argument(
        "--scram-credentials-file", dest="scram_credentials_file",
        help="user:MECHANISM:password lines: SCRAM users made at start (the first admin)")
    security.add_argument(
        "--sasl-oauthbearer-jwks-file", dest="sasl_oauthbearer_jwks_file",
        help="the JWKS whose keys sign OAUTHBEARER tokens")
    security.add_argument(
        "--connections-max-reauth-ms", dest="connections_max_reauth_ms", type=int,
        help="SASL session lifetime before clients re-authenticate (default 0: none)")
    security.add_argument("--ssl-certfile", dest="ssl_certfile",
                          help="PEM certificate chain of SSL and SASL_SSL listeners")
    security.add_argument("--ssl-keyfile", dest="ssl_keyfile", help="its PEM private key")
    security.add_argument("--ssl-cafile", dest="ssl_cafile",
                          help="PEM CAs that client (and node) certificates must chain to")
    security.add_argument("--ssl-client-auth", dest="ssl_client_auth",
                          choices=("none", "requested", "required"),
                          help="client certificates (default none)")
    security.add_argument(
        "--super-users", dest="super_users", help="principals ACLs never refuse: User:a;User:b")
    security.add_argument(
        "--allow-everyone-if-no-acl-found", dest="allow_everyone_if_no_acl_found",
        choices=("true", "false"),
        help="whether a resource without ACLs is open to all (default true)")
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
    try:
        await node.start()
    except BaseException:
        # Stop what did start (the Raft thread above all), or the process would not exit.
        await node.stop()
        raise
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await node.stop()
    log.info("stopped")


# ------------------------------------------------------------------ cluster membership


def _cluster_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="walrus-broker cluster",
        description="Inspect and change the members of a running cluster through any "
        "member's Raft port (--via).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    via_help = "HOST:RAFTPORT of a running member (not the one being removed)"
    status = sub.add_parser("status", help="members, Raft leader and registered brokers")
    status.add_argument("--via", required=True, help=via_help)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    add = sub.add_parser(
        "add-node", help="add a member; then start it with --peers listing the members"
    )
    add.add_argument("--via", required=True, help=via_help)
    add.add_argument("node", help="the new node: ID@HOST:RAFTPORT")
    remove = sub.add_parser(
        "remove-node", help="remove a member and unregister its broker; then stop it"
    )
    remove.add_argument("--via", required=True, help=via_help)
    remove.add_argument("node", help="ID@HOST:RAFTPORT, or the ID of a registered broker")
    for command in (status, add, remove):
        command.add_argument(
            "--cluster-secret-file", dest="cluster_secret_file",
            default=os.environ.get("WALRUS_CLUSTER_SECRET_FILE"),
            help="the cluster's secret file (or WALRUS_CLUSTER_SECRET_FILE); a node alone "
            "keeps its own in DATA_DIR/cluster_secret",
        )
    for command in (status, add):
        command.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    remove.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the removal (default 60)")
    return p


def _address(value: str, what: str) -> str:
    host, port = parse_host_port(value, what=what)
    return f"{host}:{port}"


def _print_status(status: ClusterStatus) -> None:
    print(f"leader: {status.leader or '(none)'}")
    print("members:")
    def by_node(member: str) -> tuple[int, str]:
        broker = status.node_for(member)
        return (broker.node_id if broker else -1, member)

    for member in sorted(status.members, key=by_node):
        broker = status.node_for(member)
        role = "  leader" if member == status.leader else ""
        if broker is None:
            print(f"  {member}  (no broker registered){role}")
        else:
            state = "alive" if broker.alive else "not alive"
            print(f"  {member}  node {broker.node_id}  kafka {broker.host}:{broker.port}  "
                  f"{state}{role}")
    strays = [b for b in status.brokers if b.raft_address not in status.members]
    for b in strays:
        print(f"registered broker {b.node_id} ({b.host}:{b.port}) is not a Raft member")
    _print_resync(status)


def _gather_copies(status: ClusterStatus, secret: str) -> None:
    """Each member reports the copies it makes itself; ask the others too (best
    effort: a member that does not answer shows none)."""
    for member in status.members:
        if member == status.via:
            continue
        try:
            status.copies.extend(fetch_copies(member, timeout=3.0, secret=secret))
        except MembershipError:
            continue


def _print_resync(status: ClusterStatus) -> None:
    gaps = status.under_replicated
    copying = sum(len(g["copying"]) for g in gaps)
    lost = sum(1 for g in gaps if not g["holders"])
    copied_bytes = sum(c["bytes"] for c in status.copies)
    print(f"under-replicated sealed segments: {len(gaps)}; copies in progress: {copying} "
          f"({copied_bytes} bytes copied so far); with no registered holder: {lost}")
    progress = {(c["topic"], c["partition"], c["epoch"], c["node_id"]): c for c in status.copies}
    for g in gaps:
        line = (f"  {g['topic']}-{g['partition']} epoch {g['epoch']} "
                f"[{g['base_offset']}, {g['end_offset']}): held by {g['holders']} "
                f"of {g['wanted']} wanted")
        for target in g["copying"]:
            c = progress.get((g["topic"], g["partition"], g["epoch"], target))
            done = "" if c is None else (
                f" at offset {c['copied_to']}, {c['bytes']} bytes from node {c['source']}")
            line += f"; copying to {target}{done}"
        print(line)


def _peers_for(status: ClusterStatus, new_address: str) -> str:
    """The --peers value the new node starts with: every other member."""
    parts = []
    for member in status.members:
        if member == new_address:
            continue
        broker = status.node_for(member)
        parts.append((broker.node_id if broker else -1, member))
    return ",".join(f"{node_id if node_id >= 0 else '?'}@{member}" for node_id, member in sorted(parts))


def _read_secret(path: str | None) -> str:
    if not path:
        raise ConfigError("--cluster-secret-file is needed: members answer only holders of "
                          "the cluster secret")
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the cluster secret file {path}: {exc}") from None


def _cluster_command(args: argparse.Namespace) -> str:
    via = _address(args.via, "--via")
    secret = _read_secret(args.cluster_secret_file)
    if args.command == "status":
        status = fetch_status(via, args.timeout, secret)
        _gather_copies(status, secret)
        if args.json:
            return json.dumps(status.to_dict())
        _print_status(status)
        return ""
    if args.command == "add-node":
        peer = Peer.parse(args.node)
        address = f"{peer.host}:{peer.raft_port}"
        before = fetch_status(via, args.timeout, secret)
        holder = next((b for b in before.brokers if b.node_id == peer.node_id), None)
        if holder is not None and holder.raft_address not in (None, address):
            raise MembershipError(
                f"node id {peer.node_id} is registered at {holder.raft_address}: "
                "remove it first or choose another id"
            )
        if address in before.members:
            return f"{address} is already a member"
        add_member(via, address, args.timeout, secret)
        after = fetch_status(via, args.timeout, secret)
        return (
            f"added {address} as a Raft member; start node {peer.node_id} with:\n"
            f"  walrus-broker --node-id {peer.node_id} --raft {address} "
            f"--peers {_peers_for(after, address)} --cluster-secret-file "
            f"{args.cluster_secret_file} --listen HOST:PORT --data-dir DIR"
        )
    # remove-node
    if args.node.strip().isdigit():
        node_id = int(args.node)
        found = next((b for b in fetch_status(via, args.timeout, secret).brokers
                      if b.node_id == node_id), None)
        if found is None or found.raft_address is None:
            raise MembershipError(
                f"broker {node_id} is not registered: name it as {node_id}@HOST:RAFTPORT"
            )
        address = found.raft_address
    else:
        peer = Peer.parse(args.node)
        node_id, address = peer.node_id, f"{peer.host}:{peer.raft_port}"
    return remove_member(via, node_id, address, args.timeout, secret=secret)


def cluster_main(argv: list[str]) -> int:
    """`walrus-broker cluster ...`: 0 when done, 1 when refused or unreachable."""
    args = _cluster_parser().parse_args(argv)
    try:
        out = _cluster_command(args)
    except (MembershipError, ConfigError) as exc:
        print(f"walrus-broker cluster {args.command}: {exc}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["cluster"]:
        return cluster_main(args[1:])
    # A native crash (a binding's illegal instruction, a segfault) leaves every
    # thread's Python stack in the log instead of a silent exit.
    faulthandler.enable()
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"walrus-broker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in unknown_environment(os.environ):
        log.warning("ignoring environment variable %s: it names no setting", name)
    loop_name = _install_event_loop_policy()
    log.info(
        "walrus-broker %s starting (node %d, event loop %s)", __version__, config.node_id, loop_name
    )
    try:
        check_before_start(config)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(config))
    except (StartupError, RaftError, LogStorageError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        # The Kafka listener's bind, should the port be taken after the early check.
        log.error("cannot start: %s", exc.strerror or exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
