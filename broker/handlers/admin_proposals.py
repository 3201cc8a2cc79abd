"""Proposing an admin change through Raft within the client's timeout, and turning the
outcome into a Kafka (error code, message) pair."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from broker.coordination.commands import Command
from broker.coordination.errors import Refusal
from broker.coordination.raft import RaftError
from broker.handlers.access import refusal_code
from broker.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from broker.node import Node

log = logging.getLogger(__name__)

# librdkafka's admin client sends timeout 0 by default ("do not wait for propagation");
# a Raft commit is still needed before the answer, so 0 or less means this.
DEFAULT_WAIT_MS = 30_000


class Outcome:
    __slots__ = ("error", "message", "result")

    def __init__(self, error: ErrorCode, message: str | None = None, result: Any = None) -> None:
        self.error = error
        self.message = message
        self.result = result


async def propose_within(node: Node, command: Command, timeout_ms: int) -> Outcome:
    """Propose `command`, waiting at most timeout_ms (REQUEST_TIMED_OUT after that, as
    Kafka answers; the change may still be applied later)."""
    wait_s = (timeout_ms if timeout_ms > 0 else DEFAULT_WAIT_MS) / 1000
    try:
        async with asyncio.timeout(wait_s):
            result = await node.propose(command)
    except TimeoutError:
        return Outcome(ErrorCode.REQUEST_TIMED_OUT, f"not committed within {timeout_ms} ms")
    except RaftError as exc:
        log.warning("%s not committed: %s", type(command).__name__, exc)
        return Outcome(ErrorCode.REQUEST_TIMED_OUT, f"metadata not committed: {exc}")
    if isinstance(result, Refusal):
        return Outcome(refusal_code(result), result.message or None, result)
    return Outcome(ErrorCode.NONE, None, result)
