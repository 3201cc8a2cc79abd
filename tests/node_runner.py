"""A real in-process node (Raft of one, logs on disk) on its own event-loop thread, so
synchronous tests can drive it and call its handlers through the codec both ways."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from broker.config import BrokerConfig
from broker.handlers.registry import REGISTRY
from broker.node import Node, _free_loopback_port
from broker.protocol import (
    api_key_for_name,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from broker.server.connection import ClientInfo


class NodeRunner:
    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = BrokerConfig(listen=("127.0.0.1", _free_loopback_port()), data_dir=data_dir, **settings)
        self.node = Node(config)
        self.run(self.node.start())  # registers every handler module as well

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Runs `coro` on the node's loop and waits for its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    def call(self, api: str, version: int, body: dict[str, Any], *, client_id: str = "unit",
             as_node: int | None = None,
             host: str = "127.0.0.1") -> Any:
        """What a client would see: encoded, decoded, handled, encoded, decoded. None
        where the handler sends no answer (a produce with acks=0)."""
        api_key = api_key_for_name(api)
        request = decode_request(encode_request(api_key, version, 7, client_id, body)[4:])
        answer = self.run(REGISTRY[api_key].handler(self.node, ClientInfo(1, host, 1, node_id=as_node), request))
        if answer is None:
            return None
        _, decoded = decode_response(api_key, version, encode_response(request, answer)[4:])
        return decoded

    def close(self) -> None:
        self.run(self.node.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
