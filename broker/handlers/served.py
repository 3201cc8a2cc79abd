"""The served version table, for `python -m broker.protocol.codegen` to put in
docs/protocol.md (it loads this file by path)."""

from broker.handlers.registry import served_versions

SERVED = served_versions()
