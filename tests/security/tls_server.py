"""A real TLS echo server on 127.0.0.1 for the TLS tests, and a client that reports what
the handshake showed each side."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvloop
from cryptography import x509

T = TypeVar("T")

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run(loop: str, main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(main)


@dataclass(slots=True)
class EchoServer:
    port: int
    # The client certificate (DER) of each connection that completed a round trip;
    # None where the client sent none.
    peers: list[bytes | None] = field(default_factory=list)


@asynccontextmanager
async def echo_server(context: ssl.SSLContext) -> AsyncIterator[EchoServer]:
    server_state = EchoServer(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.readline()
            if data:
                ssl_object = writer.get_extra_info("ssl_object")
                server_state.peers.append(ssl_object.getpeercert(binary_form=True))
                writer.write(data)
                await writer.drain()
        except (ssl.SSLError, ConnectionError):
            pass  # a client refused in the handshake
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    server_state.port = server.sockets[0].getsockname()[1]
    try:
        yield server_state
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True, slots=True)
class Seen:
    """What the client saw: the server's certificate, the protocol and cipher, and
    whether the server echoed a line (False: the handshake or the first read failed)."""

    server_certificate: x509.Certificate | None
    version: str | None
    cipher: str | None
    echoed: bool
    error: str | None = None

    @property
    def serial(self) -> int | None:
        return None if self.server_certificate is None else self.server_certificate.serial_number


async def connect(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> Seen:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=host), 10
        )
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        return Seen(None, None, None, False, f"{type(exc).__name__}: {exc}")
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    certificate = x509.load_der_x509_certificate(der) if der else None
    version, cipher = ssl_object.version(), ssl_object.cipher()[0]
    error = None
    try:
        # With TLS 1.3 the server checks the client's certificate after the client's
        # handshake is done: a refusal shows as a failed first read.
        writer.write(b"ping\n")
        echoed = await asyncio.wait_for(reader.readline(), 10) == b"ping\n"
    except (ssl.SSLError, ConnectionError) as exc:
        echoed, error = False, f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()
        with suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    return Seen(certificate, version, cipher, echoed, error)
