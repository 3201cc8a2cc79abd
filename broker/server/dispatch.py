"""From a frame to a handler and back: decoding, version checks, Kafka's error paths.

Kafka's rules, followed here:
- An ApiVersions request at a version we do not serve gets a v0 response with
  UNSUPPORTED_VERSION and our version table (KIP-511), so the client can retry lower.
- Any other unknown API, unserved version or malformed request closes the connection
  (Kafka cannot know which error fields such a request expects).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.protocol import (
    ProtocolError,
    Request,
    UnsupportedVersionError,
    decode_request,
    encode_response,
)
from broker.protocol.errors import ErrorCode
from broker.server import sasl_gate
from broker.server.connection import ClientInfo, CloseConnection

log = logging.getLogger(__name__)

API_VERSIONS_KEY = 18

# Frames larger than this are decoded, and their answers encoded, on a worker thread.
# Decoding costs about a microsecond per array element, and a frame of max_request_bytes
# can hold tens of millions of elements: on the event loop that is seconds during which
# no other connection is served. Below it, the hop to a thread costs more than it saves.
OFF_LOOP_FRAME_BYTES = 64 * 1024
# A request that took longer than this to decode is answered from a worker thread too.
HEAVY_DECODE_S = 0.002


def _timed_decode(frame: bytes) -> tuple[Request, float]:
    started = time.perf_counter()
    request = decode_request(frame)
    return request, time.perf_counter() - started

# A handler gets the client's details and the decoded request, and returns the response
# body (a mapping with the spec's snake_case field names) or None for no response.
Handler = Callable[[ClientInfo, Request], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    min_version: int
    max_version: int


# After SaslHandshake v0: the client's bare token in, the server's answer out (without
# size prefix); raises CloseConnection when the exchange fails.
RawSaslHandler = Callable[[ClientInfo, bytes], Awaitable[bytes]]


class Dispatcher:
    def __init__(self, routes: Mapping[int, Route], raw_sasl: RawSaslHandler | None = None) -> None:
        self._routes = dict(routes)
        self._raw_sasl = raw_sasl

    def served_versions(self) -> dict[int, tuple[int, int]]:
        return {key: (r.min_version, r.max_version) for key, r in sorted(self._routes.items())}

    def api_versions_table(self) -> list[dict[str, int]]:
        return [
            {"api_key": key, "min_version": lo, "max_version": hi}
            for key, (lo, hi) in self.served_versions().items()
        ]

    async def handle_frame(self, client: ClientInfo, frame: bytes) -> bytes | None:
        if client.sasl_raw_tokens and self._raw_sasl is not None:
            token = await self._raw_sasl(client, frame)
            return len(token).to_bytes(4, "big") + token
        if not client.authenticated or client.session_expires_at is not None:
            refused = sasl_gate.refusal(client, frame, time.monotonic())
            if refused is not None:
                raise CloseConnection(refused)
        heavy = False
        try:
            if len(frame) > OFF_LOOP_FRAME_BYTES:
                request, decode_s = await asyncio.to_thread(_timed_decode, frame)
                # Most large frames are large for their record bytes (a produce request):
                # few elements, decoded in well under a millisecond, and an answer as
                # small. Only a request that was slow to decode gets its answer encoded
                # on a thread too: a second thread hop per produce is CPU that acks=all
                # replication needs.
                heavy = decode_s > HEAVY_DECODE_S
            else:
                request = decode_request(frame)
        except UnsupportedVersionError as exc:
            if exc.api_key == API_VERSIONS_KEY and exc.correlation_id is not None:
                return self._unsupported_api_versions(exc.correlation_id, exc.api_version)
            raise CloseConnection(f"unsupported request: {exc.reason}") from None
        except ProtocolError as exc:
            raise CloseConnection(f"undecodable request: {exc.reason}") from None

        route = self._routes.get(request.api_key)
        if route is None or not route.min_version <= request.api_version <= route.max_version:
            if request.api_key == API_VERSIONS_KEY:
                return self._unsupported_api_versions(request.correlation_id, request.api_version)
            raise CloseConnection(
                f"api key {request.api_key} version {request.api_version} is not served"
            )
        try:
            body = await route.handler(client, request)
        except CloseConnection:
            raise
        except Exception:
            log.exception(
                "handler for api key %d v%d failed (client %r)",
                request.api_key,
                request.api_version,
                request.client_id,
            )
            raise CloseConnection("internal error while handling the request") from None
        if body is None:
            return None
        if heavy:
            # The answer to a request of many elements can have as many.
            return await asyncio.to_thread(encode_response, request, body)
        return encode_response(request, body)

    def _unsupported_api_versions(self, correlation_id: int, version: int | None) -> bytes:
        log.info("ApiVersions v%s is not served; answering v0 with UNSUPPORTED_VERSION", version)
        request = Request(
            api_key=API_VERSIONS_KEY,
            api_version=0,
            correlation_id=correlation_id,
            client_id=None,
            body=None,
        )
        return encode_response(
            request,
            {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": self.api_versions_table()},
        )
