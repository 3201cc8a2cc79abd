"""A TCP proxy between Kafka clients and one broker that loses some Produce answers:
it cuts the client's connection instead of passing the answer on. The broker has
written the batch; the client does not know, so it sends the same batch again on a new
connection. That is the retry an idempotent producer must survive without storing a
record twice.

Start the broker with `--advertise` set to the proxy's address, so that clients reach
the broker only through it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

PRODUCE = 0


class DroppingProxy:
    def __init__(self, broker_port: int, *, port: int = 0, drop_every: int,
                 max_drops: int) -> None:
        """Listen on `port` (0: any free one); cut the connection at every
        `drop_every`-th Produce answer, `max_drops` times."""
        self._broker_port = broker_port
        self._drop_every = drop_every
        self._max_drops = max_drops
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self._produce_answers = 0
        self.drops = 0
        self._closed = False
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DroppingProxy:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True
        self._server.close()

    def stop_dropping(self) -> None:
        """From now on pass every answer on."""
        with self._lock:
            self._max_drops = self.drops

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self._broker_port), 5)
            except OSError:
                client.close()
                continue
            pending: dict[int, int] = {}  # correlation id -> api key, of requests sent on
            for target in (self._requests, self._answers):
                t = threading.Thread(target=target, args=(client, broker, pending), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _read_frame(sock: socket.socket) -> bytes | None:
        header = _read_exactly(sock, 4)
        if header is None:
            return None
        return _read_exactly(sock, struct.unpack(">i", header)[0])

    def _requests(self, client: socket.socket, broker: socket.socket,
                  pending: dict[int, int]) -> None:
        try:
            while (frame := self._read_frame(client)) is not None:
                api_key, _, correlation = struct.unpack_from(">hhi", frame)
                pending[correlation] = api_key
                broker.sendall(struct.pack(">i", len(frame)) + frame)
        except OSError:
            pass
        _close(client, broker)

    def _answers(self, client: socket.socket, broker: socket.socket,
                 pending: dict[int, int]) -> None:
        try:
            while (frame := self._read_frame(broker)) is not None:
                correlation = struct.unpack_from(">i", frame)[0]
                if pending.pop(correlation, None) == PRODUCE and self._drop_now():
                    break
                client.sendall(struct.pack(">i", len(frame)) + frame)
        except OSError:
            pass
        _close(client, broker)

    def _drop_now(self) -> bool:
        with self._lock:
            self._produce_answers += 1
            if self.drops < self._max_drops and self._produce_answers % self._drop_every == 0:
                self.drops += 1
                return True
            return False


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
