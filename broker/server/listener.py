"""One Kafka listener: a socket (TLS or not) that accepts connections and tracks them so
shutdown can close them. A node runs one per configured listener."""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Callable

from broker.server.connection import ClientInfo, FrameHandler, KafkaConnection
from broker.server.request_memory import RequestMemory

log = logging.getLogger(__name__)


def raise_open_file_limit() -> int:
    """Thousands of client connections need thousands of descriptors; the default
    soft limit (often 1024) is lower than the hard limit we are allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


class KafkaServer:
    def __init__(
        self,
        handle_frame: FrameHandler,
        *,
        host: str,
        port: int,
        max_request_bytes: int,
        idle_timeout_s: float,
        queued_max_request_bytes: int = 0,
        memory: RequestMemory | None = None,
        name: str = "PLAINTEXT",
        security_protocol: str = "PLAINTEXT",
        ssl_context: ssl.SSLContext | None = None,
        on_secure: Callable[[ClientInfo, asyncio.BaseTransport], None] | None = None,
    ) -> None:
        self._handle_frame = handle_frame
        self.host = host
        self.port = port
        self.name = name
        self.security_protocol = security_protocol
        self._ssl = ssl_context
        self._on_secure = on_secure
        self._max_request_bytes = max_request_bytes
        self._idle_timeout_s = idle_timeout_s
        # One budget for the request bytes every connection holds (request_memory),
        # shared by all the node's listeners when it is passed in.
        self.memory = memory if memory is not None else RequestMemory(queued_max_request_bytes)
        self._server: asyncio.Server | None = None
        self._connections: set[KafkaConnection] = set()

    def _new_connection(self) -> KafkaConnection:
        conn = KafkaConnection(
            self._handle_frame,
            max_request_bytes=self._max_request_bytes,
            idle_timeout_s=self._idle_timeout_s,
            memory=self.memory,
            on_close=self._connections.discard,
            listener=self.name,
            security_protocol=self.security_protocol,
            on_secure=self._on_secure,
        )
        self._connections.add(conn)
        return conn

    async def start(self) -> None:
        raise_open_file_limit()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection, self.host or None, self.port, backlog=4096,
            reuse_address=True, ssl=self._ssl,
        )
        sockets = self._server.sockets or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("listening for Kafka clients on %s:%d (listener %s, %s)", self.host, self.port,
                 self.name, self.security_protocol)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
