"""Reading Kafka's JSON message definitions into a small typed model."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True, frozen=True)
class VersionRange:
    low: int
    high: int | None  # None: open-ended

    @classmethod
    def parse(cls, text: str | None) -> VersionRange | None:
        """None for "none" or an absent range."""
        if text is None or text.strip() == "none":
            return None
        text = text.strip()
        if text.endswith("+"):
            return cls(int(text[:-1]), None)
        if "-" in text:
            low, high = text.split("-", 1)
            return cls(int(low), int(high))
        return cls(int(text), int(text))

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, int):
            return False
        return version >= self.low and (self.high is None or version <= self.high)


def contains(rng: VersionRange | None, version: int) -> bool:
    return rng is not None and version in rng


@dataclass(slots=True)
class FieldSpec:
    name: str
    type: str
    versions: VersionRange | None
    nullable_versions: VersionRange | None
    tagged_versions: VersionRange | None
    tag: int | None
    default: Any
    flexible_versions: VersionRange | None
    flexible_override: bool  # field sets its own flexibleVersions
    fields: list[FieldSpec] | None  # inline struct fields, if any

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element_type(self) -> str:
        return self.type[2:] if self.is_array else self.type


@dataclass(slots=True)
class MessageSpec:
    name: str
    kind: str  # request, response, header, data
    api_key: int | None
    valid_versions: VersionRange
    flexible_versions: VersionRange | None
    fields: list[FieldSpec]
    common_structs: dict[str, list[FieldSpec]] = field(default_factory=dict)
    latest_version_unstable: bool = False
    deprecated_versions: VersionRange | None = None
    source_file: str = ""

    @property
    def versions(self) -> range:
        high = self.valid_versions.high
        assert high is not None, f"{self.name}: open-ended validVersions"
        return range(self.valid_versions.low, high + 1)

    def flexible_from(self) -> int | None:
        return None if self.flexible_versions is None else self.flexible_versions.low


PRIMITIVE_TYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "float64",
        "uuid",
        "string",
        "bytes",
        "records",
    }
)


def strip_comments(text: str) -> str:
    """Drop // comments outside string literals (the specs are JSON with comments)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _field(raw: dict[str, Any]) -> FieldSpec:
    sub = raw.get("fields")
    return FieldSpec(
        name=raw["name"],
        type=raw["type"],
        versions=VersionRange.parse(raw.get("versions")),
        nullable_versions=VersionRange.parse(raw.get("nullableVersions")),
        tagged_versions=VersionRange.parse(raw.get("taggedVersions")),
        tag=raw.get("tag"),
        default=raw.get("default"),
        flexible_versions=VersionRange.parse(raw.get("flexibleVersions")),
        flexible_override="flexibleVersions" in raw,
        fields=[_field(f) for f in sub] if sub is not None else None,
    )


def load_message(path: Path) -> MessageSpec:
    raw = json.loads(strip_comments(path.read_text(encoding="utf-8")))
    valid = VersionRange.parse(raw["validVersions"])
    assert valid is not None, f"{path.name}: no validVersions"
    return MessageSpec(
        name=raw["name"],
        kind=raw["type"],
        api_key=raw.get("apiKey"),
        valid_versions=valid,
        flexible_versions=VersionRange.parse(raw.get("flexibleVersions")),
        fields=[_field(f) for f in raw["fields"]],
        common_structs={
            cs["name"]: [_field(f) for f in cs["fields"]] for cs in raw.get("commonStructs", [])
        },
        latest_version_unstable=bool(raw.get("latestVersionUnstable", False)),
        deprecated_versions=VersionRange.parse(raw.get("deprecatedVersions")),
        source_file=path.name,
    )


def load_all(spec_dir: Path) -> list[MessageSpec]:
    return [load_message(p) for p in sorted(spec_dir.glob("*.json"))]
