"""Which request/response header version goes with which API version, as Kafka does it.

- request header v2 (tagged fields) for flexible API versions, else v1 (client id);
  ControlledShutdown v0 alone uses request header v0 (no client id);
- response header v1 (tagged fields) for flexible API versions, else v0; an ApiVersions
  response always uses v0, so that a client can read it whatever version it asked for.
"""

from __future__ import annotations

from broker.protocol.catalog import is_flexible

API_VERSIONS_KEY = 18
CONTROLLED_SHUTDOWN_KEY = 7


def request_header_version(api_key: int, api_version: int) -> int:
    if is_flexible(api_key, api_version):
        return 2
    if api_key == CONTROLLED_SHUTDOWN_KEY and api_version == 0:
        return 0
    return 1


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == API_VERSIONS_KEY:
        return 0
    return 1 if is_flexible(api_key, api_version) else 0
