"""The one exception family the codec lets escape.

Whatever goes wrong while reading or writing a frame surfaces as a ``ProtocolError``;
the server can then answer (it gets the correlation id whenever the fixed header prefix
was readable) or close the connection, without guessing at library internals.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A frame could not be decoded, or a value could not be encoded."""

    def __init__(
        self,
        reason: str,
        *,
        api_key: int | None = None,
        api_version: int | None = None,
        correlation_id: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id

    def __str__(self) -> str:
        where = []
        if self.api_key is not None:
            where.append(f"api_key={self.api_key}")
        if self.api_version is not None:
            where.append(f"api_version={self.api_version}")
        if self.correlation_id is not None:
            where.append(f"correlation_id={self.correlation_id}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason


class UnknownApiError(ProtocolError):
    """The request names an API key the codec has no schema for."""


class UnsupportedVersionError(ProtocolError):
    """The API is known but not at the requested version."""


class MalformedMessageError(ProtocolError):
    """The bytes do not form a valid message of the declared API and version."""
