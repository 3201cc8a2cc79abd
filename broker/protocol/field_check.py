"""Finding keys in an outgoing value that the message spec does not know.

The encoders ignore such keys (a mapping may carry extra data), which also hides a
misspelt field name: it would go out as the field's default. Tests and cautious
callers can ask for ``strict=True`` encoding, which runs this check first; it walks
the value in Python, so it stays off the hot path by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.protocol import catalog
from broker.protocol.kafka_types import KArray, KOptionalStruct, KStruct


def unknown_fields(name: str, version: int, value: Mapping[str, Any]) -> list[str]:
    """Paths like ``topics[0].partitons`` of keys that ``name`` v``version`` lacks.

    Fields that the spec has but this version does not carry are known (and ignored
    when encoding); keys starting with ``_`` are metadata such as ``_unknown_tags``.
    """
    found: list[str] = []
    _walk(catalog.uncompiled(name, version), value, "", found)
    return found


def _walk(con: Any, value: Any, path: str, found: list[str]) -> None:
    if value is None:
        return
    if isinstance(con, KOptionalStruct):
        _walk(con.subcon, value, path, found)
    elif isinstance(con, KArray):
        for i, item in enumerate(value):
            _walk(con.subcon, item, f"{path}[{i}]", found)
    elif isinstance(con, KStruct):
        if not isinstance(value, Mapping):
            found.append(f"{path or '<root>'} (not a mapping: {type(value).__name__})")
            return
        fields = {f.name: f for f in con.fields}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            field = fields.get(key)
            if field is None:
                if not (isinstance(key, str) and key.startswith("_")):
                    found.append(where)
            elif field.con is not None:
                _walk(field.con, item, where, found)
