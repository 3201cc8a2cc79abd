"""An asyncio Kafka client for node-to-node requests, on the broker's own codec.

One connection per peer, pipelined: requests are written as they come and answers are
matched to them by correlation id (a Kafka server answers in order, so a FIFO of
waiting futures is enough). Each connection first proves this node's identity with the
WALRUS-NODE SASL exchange; the peer treats it as a node only then. When the
inter-broker listener uses TLS, connections are TLS too, verifying the peer's
certificate against ssl_cafile and its advertised host.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import struct
import time
from typing import Any

from broker.protocol import api_key_for_name, decode_response, encode_request
from broker.security import node_identity
from broker.security.node_identity import NodeCredentials

log = logging.getLogger(__name__)

CLIENT_ID = "walrus-interbroker"
# A connection to a peer with nothing in flight for this long is closed when the next
# one is opened.
IDLE_CLOSE_S = 60.0


class PeerUnavailable(Exception):
    """The peer could not be reached, or the connection broke before it answered."""


_SASL_HANDSHAKE = api_key_for_name("SaslHandshake")
_SASL_AUTHENTICATE = api_key_for_name("SaslAuthenticate")


class PeerConnection:
    def __init__(self, host: str, port: int, *, connect_timeout: float = 3.0,
                 credentials: NodeCredentials | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self._connect_timeout = connect_timeout
        self._credentials = credentials
        self._ssl = ssl_context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: collections.deque[tuple[int, int, int, asyncio.Future[Any]]] = collections.deque()
        self._correlation = 0
        self._reader_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self.last_used = time.monotonic()

    @property
    def idle(self) -> bool:
        return not self._pending

    async def _ensure_connected(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            return
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can drop the cancel of a
                # stopping node when the connection opens at that moment.
                async with asyncio.timeout(self._connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        self.host, self.port, ssl=self._ssl,
                        server_hostname=self.host if self._ssl is not None else None)
            except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                raise PeerUnavailable(f"cannot connect to {self.host}:{self.port}: {exc}") from None
            if self._credentials is not None:
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        await self._prove_identity(reader, writer, self._credentials)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, PeerUnavailable) as exc:
                    writer.close()
                    raise PeerUnavailable(
                        f"{self.host}:{self.port} did not accept this node's identity: {exc}"
                    ) from None
            self._reader, self._writer = reader, writer
            self._reader_task = asyncio.create_task(self._read_loop(reader))

    async def _prove_identity(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              credentials: NodeCredentials) -> None:
        """The WALRUS-NODE exchange, before any other request on the connection."""

        async def ask(api_key: int, version: int, body: dict[str, Any]) -> Any:
            self._correlation = (self._correlation + 1) & 0x7FFFFFFF
            writer.write(encode_request(api_key, version, self._correlation, CLIENT_ID, body))
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            _, answer = decode_response(api_key, version, await reader.readexactly(size))
            if answer.error_code != 0:
                raise PeerUnavailable(
                    f"error {answer.error_code}: {getattr(answer, 'error_message', '')}")
            return answer

        await ask(_SASL_HANDSHAKE, 1, {"mechanism": node_identity.MECHANISM})
        client_nonce = node_identity.new_nonce()
        challenge = await ask(_SASL_AUTHENTICATE, 2, {
            "auth_bytes": node_identity.first_message(credentials.node_id, client_nonce)})
        await ask(_SASL_AUTHENTICATE, 2, {"auth_bytes": node_identity.proof(
            credentials.key, credentials.node_id, client_nonce, bytes(challenge.auth_bytes))})

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                if not self._pending:
                    log.warning("unexpected answer from %s:%d", self.host, self.port)
                    continue
                correlation, api_key, version, future = self._pending.popleft()
                if future.done():
                    continue
                try:
                    got, body = decode_response(api_key, version, frame)
                    if got != correlation:
                        raise PeerUnavailable(f"correlation id {got}, expected {correlation}")
                    future.set_result(body)
                except Exception as exc:  # a bad answer fails its request, not the loop
                    future.set_exception(exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._fail_all(PeerUnavailable(f"connection to {self.host}:{self.port} lost: {exc}"))
        except asyncio.CancelledError:
            self._fail_all(PeerUnavailable("connection closed"))
            raise

    def _fail_all(self, exc: Exception) -> None:
        while self._pending:
            *_, future = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    async def request(self, api_key: int, version: int, body: dict[str, Any], timeout: float) -> Any:
        self.last_used = time.monotonic()
        await self._ensure_connected()
        assert self._writer is not None
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_mark_exception_seen)
        self._pending.append((self._correlation, api_key, version, future))
        self._writer.write(encode_request(api_key, version, self._correlation, CLIENT_ID, body))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel that comes
            # as the answer does, and a cancelled caller (a follower loop) runs on.
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            # The answer may still come; the connection is reset so later answers cannot
            # be matched to the wrong request.
            self.close()
            raise PeerUnavailable(f"{self.host}:{self.port} did not answer in {timeout}s") from None

    def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._fail_all(PeerUnavailable("connection closed"))


def _mark_exception_seen(future: asyncio.Future[Any]) -> None:
    # The caller may have stopped waiting (its own timeout, or it was cancelled) by the
    # time the connection fails; the failure is reported to callers still waiting, and
    # must not be logged again by asyncio as never retrieved.
    if not future.cancelled():
        future.exception()


class PeerPool:
    """Connections to peer nodes, opened on first use: one per peer and channel.

    A Kafka server answers each connection's requests one at a time, so traffic that
    waits (a follower's long-polling fetch, an acks=all produce waiting for that very
    follower) must not share a connection with traffic it waits for: each use gets its
    own channel.
    """

    def __init__(self, credentials: NodeCredentials | None = None) -> None:
        self._connections: dict[tuple[str, int, str], PeerConnection] = {}
        # What each new connection proves itself with; set once the node knows its
        # cluster secret.
        self.credentials = credentials
        # Set when the inter-broker listener uses TLS.
        self.ssl_context: ssl.SSLContext | None = None
        self._last_sweep = time.monotonic()

    def connection(self, host: str, port: int, channel: str = "default") -> PeerConnection:
        key = (host, port, channel)
        conn = self._connections.get(key)
        if conn is None:
            self._close_idle()
            conn = self._connections[key] = PeerConnection(
                host, port, credentials=self.credentials, ssl_context=self.ssl_context)
        return conn

    def _close_idle(self) -> None:
        """Close connections with nothing in flight and no use for IDLE_CLOSE_S: a
        channel per client connection (forwarded produce) must not pile up."""
        now = time.monotonic()
        if now - self._last_sweep < IDLE_CLOSE_S / 10:
            return
        self._last_sweep = now
        for key, conn in list(self._connections.items()):
            if conn.idle and now - conn.last_used > IDLE_CLOSE_S:
                del self._connections[key]
                with contextlib.suppress(Exception):
                    conn.close()

    async def request(self, host: str, port: int, api_key: int, version: int,
                      body: dict[str, Any], timeout: float = 10.0, channel: str = "default") -> Any:
        return await self.connection(host, port, channel).request(api_key, version, body, timeout)

    def close(self) -> None:
        for conn in self._connections.values():
            with contextlib.suppress(Exception):
                conn.close()
        self._connections.clear()
