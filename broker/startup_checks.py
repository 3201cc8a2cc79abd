"""Checks run before a node starts anything, so that a mistake an operator can fix
(a port in use, a data directory that cannot hold data) ends the process within
seconds with one line that says what to fix, instead of a traceback or a long wait.

Each check raises StartupError; the command line prints its message and exits.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import ssl
import uuid
from pathlib import Path

from broker.config import BrokerConfig
from broker.server.listener_specs import uses_tls


class StartupError(Exception):
    """The node cannot start; the message is one line an operator can act on."""


def check_data_dir(path: Path) -> None:
    """The data directory exists (or can be made in an existing parent) and takes files."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"data directory {path} is a file, not a directory")
    if not path.exists():
        parent = path.absolute().parent
        if not parent.is_dir():
            # Creating the whole chain would hide a mistyped path (a mount point that is
            # not there) until the disk under it fills up.
            raise StartupError(
                f"data directory {path} is missing and so is its parent {parent}: "
                "create the parent, or fix the path"
            )
        try:
            path.mkdir()
        except FileExistsError:
            pass  # made by someone else in between: checked below like any other
        except OSError as exc:
            raise StartupError(f"cannot create data directory {path}: {_reason(exc)}") from None
    probe = path / f".walrus-write-check-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise StartupError(f"data directory {path} is not writable: {_reason(exc)}") from None


def check_port_free(host: str, port: int, what: str) -> None:
    """Bind the address once and let it go: another process holding it is reported now,
    not after the node has waited for its Raft group."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"{what} {host}:{port}: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # The listeners set SO_REUSEADDR too, so a port left in TIME_WAIT by a
        # previous run is not reported as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"{what} {host}:{port} is already in use (another broker, or an earlier "
                    "one still running?)"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise StartupError(
                    f"{what} {host}:{port}: {host} is not an address of this machine"
                ) from None
            raise StartupError(f"{what} {host}:{port} cannot be used: {_reason(exc)}") from None


def check_io_backend(name: str) -> None:
    """Decide how segment files are written now (the probe runs in a child process):
    "auto" logs its choice, an explicit "io_uring" that cannot work stops the start."""
    if name == "posix":
        return
    from broker.log.errors import LogStorageError
    from broker.log.io_backend import open_backend

    try:
        open_backend(name).close()
    except LogStorageError as exc:
        raise StartupError(f"{exc} (--io-backend auto or posix writes without it)") from None


def check_before_start(config: BrokerConfig) -> None:
    check_data_dir(config.data_dir)
    load_cluster_secret(config)
    check_io_backend(config.io_backend)
    for listener in config.bound_listeners:
        what = "Kafka port" if not config.listeners else f"Kafka port of listener {listener.name}"
        check_port_free(listener.host, listener.port, what=what)
    check_authentication(config)
    if any(uses_tls(config.security_protocol(li.name)) for li in config.bound_listeners):
        check_tls_files(config)
    if config.raft is not None:
        check_port_free(*config.raft, what="Raft port")


def check_tls_files(config: BrokerConfig) -> None:
    from broker.security.tls import build_server_context

    try:
        # Both read and check the files; the client side is what this node shows the
        # others on a TLS inter-broker listener.
        build_server_context(config.tls_settings())
        if uses_tls(config.security_protocol(config.inter_broker_listener)):
            from broker.node import inter_broker_tls

            inter_broker_tls(config)
    except ValueError as exc:  # TlsConfigError is a ConfigError, a ValueError
        raise StartupError(str(exc)) from None
    except ssl.SSLError as exc:
        raise StartupError(f"TLS files for the inter-broker listener: {exc}") from None


def check_authentication(config: BrokerConfig) -> None:
    """The credentials and key files the SASL mechanisms read, before anything starts."""
    from broker.security import scram
    from broker.security.authenticators import Authenticators

    try:
        Authenticators(config, lambda _user, _mechanism: None)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    path = config.scram_credentials_file
    if path is not None:
        try:
            for _user, mechanism, _password in scram.parse_credentials_file(
                    path.read_text(encoding="utf-8")):
                scram.hash_name(mechanism)
        except (OSError, ValueError) as exc:
            raise StartupError(f"scram_credentials_file {path}: {exc}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# Long enough that guessing it is hopeless; a generated one has 43 characters.
MIN_SECRET_LENGTH = 16
GENERATED_SECRET_NAME = "cluster_secret"


def load_cluster_secret(config: BrokerConfig) -> str:
    """The secret this node's Raft traffic is authenticated with.

    A cluster's members share one file (--cluster-secret-file). A node started without
    peers and without a file makes its own once and keeps it in its data directory,
    readable by its user only; nodes that join it later are given a copy of that file.
    """
    path = config.cluster_secret_file
    if path is None:
        if config.peers:
            raise StartupError(
                "a node with --peers needs --cluster-secret-file: the same secret file on "
                "every member (for example the cluster_secret a first node made in its "
                "data directory)"
            )
        path = config.data_dir / GENERATED_SECRET_NAME
        if not path.exists():
            _write_new_secret(path)
    try:
        text = path.read_text().strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(f"cannot read the cluster secret file {path}: {exc}") from None
    if len(text) < MIN_SECRET_LENGTH:
        raise StartupError(
            f"the cluster secret in {path} is shorter than {MIN_SECRET_LENGTH} characters"
        )
    if mode & 0o077:
        logging.getLogger("walrus").warning(
            "cluster secret file %s can be read by other users (mode %o): chmod 600 it",
            path, mode & 0o777,
        )
    return text


def _write_new_secret(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first; read theirs
    except OSError as exc:
        raise StartupError(f"cannot create the cluster secret file {path}: {_reason(exc)}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
        f.flush()
        os.fsync(f.fileno())
