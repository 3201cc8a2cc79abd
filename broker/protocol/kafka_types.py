"""construct classes for Kafka's wire types, with compiled forms.

Each class implements both construct's interpreted ``_parse``/``_build`` and the
compiler hooks ``_emitparse``/``_emitbuild``; without the latter ``.compile()`` would
silently fall back to calling the interpreted methods from the compiled code.

Conventions shared by all of them:
- parsing yields plain Python values; structs become ``construct.Container`` with the
  spec's field names in snake_case, every field of the spec present (fields a version
  does not carry hold their defaults), so handlers can read any field at any version;
- building takes any Mapping; a missing key builds the field's default;
- the context (``this``) is passed through unchanged: Kafka schemas never refer to a
  sibling field, and a dict context may carry ``_buf`` (the whole frame as a memoryview)
  so that record batches are sliced rather than copied.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from construct import (
    Construct,
    Container,
    Flag,
    FormatField,
    SizeofError,
)

from broker.protocol import wire_primitives as wp
from broker.protocol.exceptions import MalformedMessageError

ZERO_UUID = uuid.UUID(int=0)

# Names the generated default expressions may use.
DEFAULT_NAMESPACE: dict[str, Any] = {"Container": Container, "ZERO_UUID": ZERO_UUID}

_RUNTIME_IMPORTS = """
from broker.protocol.wire_primitives import (read_uvarint, uvarint, read_exact, read_records,
    check_count, read_string_length, read_bytes_length, read_array_length, length_prefix,
    null_prefix, null_field, byte_length, write_tagged_section, read_tagged_header,
    finish_tagged_field, build_to_bytes, remaining)
from broker.protocol.exceptions import MalformedMessageError
from broker.protocol.kafka_types import ZERO_UUID, uuid_bytes
from uuid import UUID
import struct as _struct
"""


def _fixed_format(con: Construct) -> str | None:
    """The struct format char of a fixed-width primitive, or None."""
    if isinstance(con, FormatField):
        return str(con.fmtstr[1])
    if con is Flag:
        return "?"
    return None


def uuid_bytes(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 16:
        return bytes(value)
    if isinstance(value, str):
        return uuid.UUID(value).bytes
    raise MalformedMessageError(f"not a UUID: {value!r}")


def _no_sizeof(path: str) -> SizeofError:
    return SizeofError("Kafka messages have no fixed size", path=path)


class KUuid(Construct):  # type: ignore[misc]
    """16 raw bytes, parsed into ``uuid.UUID``; builds from UUID, 16 bytes or str."""

    def _parse(self, stream: BytesIO, context: Any, path: str) -> uuid.UUID:
        return uuid.UUID(bytes=wp.read_exact(stream, 16))

    def _build(self, obj: Any, stream: BytesIO, context: Any, path: str) -> Any:
        stream.write(uuid_bytes(obj))
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        return 16

    def _emitparse(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        return "UUID(bytes=read_exact(io, 16))"

    def _emitbuild(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        return "(io.write(uuid_bytes(obj)), obj)[1]"


class KString(Construct):  # type: ignore[misc]
    """UTF-8 string: int16 length (-1 null) or compact uvarint length+1 (0 null)."""

    def __init__(self, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.compact = compact
        self.nullable = nullable

    def _parse(self, stream: BytesIO, context: Any, path: str) -> str | None:
        n = wp.read_string_length(stream, self.compact)
        if n < 0:
            if self.nullable:
                return None
            raise wp.null_field(path)
        return wp.read_exact(stream, n).decode("utf-8")

    def _build(self, obj: Any, stream: BytesIO, context: Any, path: str) -> Any:
        if obj is None:
            if not self.nullable:
                raise wp.null_field(path)
            stream.write(wp.null_prefix(self.compact, False))
            return obj
        data = obj.encode("utf-8")
        stream.write(wp.length_prefix(len(data), self.compact, False))
        stream.write(data)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise _no_sizeof(path)

    def _emitparse(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"parse_kstring_{code.allocateId()}"
        on_null = "return None" if self.nullable else "raise null_field('string')"
        code.append(f"""
            def {fname}(io):
                n = read_string_length(io, {self.compact})
                if n < 0:
                    {on_null}
                return read_exact(io, n).decode('utf-8')
        """)
        return f"{fname}(io)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"build_kstring_{code.allocateId()}"
        on_null = (
            f"io.write({wp.null_prefix(self.compact, False)!r})"
            if self.nullable
            else "raise null_field('string')"
        )
        code.append(f"""
            def {fname}(obj, io):
                if obj is None:
                    {on_null}
                    return obj
                data = obj.encode('utf-8')
                io.write(length_prefix(len(data), {self.compact}, False))
                io.write(data)
                return obj
        """)
        return f"{fname}(obj, io)"


class KBytes(Construct):  # type: ignore[misc]
    """Opaque bytes (also ``records``): int32 length (-1 null) or compact length+1.

    ``records`` fields are sliced from the frame (memoryview) when the context carries
    the frame as ``_buf``; building accepts bytes, bytearray, memoryview or None.
    """

    def __init__(self, compact: bool, nullable: bool, records: bool = False) -> None:
        super().__init__()
        self.compact = compact
        self.nullable = nullable
        self.records = records

    def _parse(self, stream: BytesIO, context: Any, path: str) -> bytes | memoryview | None:
        n = wp.read_bytes_length(stream, self.compact)
        if n < 0:
            if self.nullable:
                return None
            raise wp.null_field(path)
        if self.records:
            return wp.read_records(stream, context, n)
        return wp.read_exact(stream, n)

    def _build(self, obj: Any, stream: BytesIO, context: Any, path: str) -> Any:
        if obj is None:
            if not self.nullable:
                raise wp.null_field(path)
            stream.write(wp.null_prefix(self.compact, True))
            return obj
        stream.write(wp.length_prefix(wp.byte_length(obj), self.compact, True))
        stream.write(obj)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise _no_sizeof(path)

    def _emitparse(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"parse_kbytes_{code.allocateId()}"
        on_null = "return None" if self.nullable else "raise null_field('bytes')"
        read = "read_records(io, this, n)" if self.records else "read_exact(io, n)"
        code.append(f"""
            def {fname}(io, this):
                n = read_bytes_length(io, {self.compact})
                if n < 0:
                    {on_null}
                return {read}
        """)
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"build_kbytes_{code.allocateId()}"
        on_null = (
            f"io.write({wp.null_prefix(self.compact, True)!r})"
            if self.nullable
            else "raise null_field('bytes')"
        )
        code.append(f"""
            def {fname}(obj, io):
                if obj is None:
                    {on_null}
                    return obj
                io.write(length_prefix(byte_length(obj), {self.compact}, True))
                io.write(obj)
                return obj
        """)
        return f"{fname}(obj, io)"


class KArray(Construct):  # type: ignore[misc]
    """Array: int32 count (-1 null) or compact count+1 (0 null), then the elements."""

    def __init__(self, subcon: Construct, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.subcon = subcon
        self.compact = compact
        self.nullable = nullable
        self.fixed = _fixed_format(subcon)

    def _parse(self, stream: BytesIO, context: Any, path: str) -> list[Any] | None:
        n = wp.read_array_length(stream, self.compact)
        if n < 0:
            if self.nullable:
                return None
            raise wp.null_field(path)
        return [self.subcon._parsereport(stream, context, path) for _ in range(n)]

    def _build(self, obj: Any, stream: BytesIO, context: Any, path: str) -> Any:
        if obj is None:
            if not self.nullable:
                raise wp.null_field(path)
            stream.write(wp.null_prefix(self.compact, True))
            return obj
        stream.write(wp.length_prefix(len(obj), self.compact, True))
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise _no_sizeof(path)

    def _emitparse(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"parse_karray_{code.allocateId()}"
        on_null = "return None" if self.nullable else "raise null_field('array')"
        if self.fixed:
            size = struct.calcsize(">" + self.fixed)
            body = f"return list(_struct.unpack('>%d{self.fixed}' % n, io.read({size} * n)))"
        else:
            body = f"return [{self.subcon._compileparse(code)} for _ in range(n)]"
        code.append(f"""
            def {fname}(io, this):
                n = read_array_length(io, {self.compact})
                if n < 0:
                    {on_null}
                {body}
        """)
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"build_karray_{code.allocateId()}"
        on_null = (
            f"io.write({wp.null_prefix(self.compact, True)!r})"
            if self.nullable
            else "raise null_field('array')"
        )
        if self.fixed:
            body = f"io.write(_struct.pack('>%d{self.fixed}' % len(items), *items))"
        else:
            body = f"""for obj in items:
                    {self.subcon._compilebuild(code)}"""
        code.append(f"""
            def {fname}(obj, io, this):
                if obj is None:
                    {on_null}
                    return obj
                items = obj
                io.write(length_prefix(len(items), {self.compact}, True))
                {body}
                return items
        """)
        return f"{fname}(obj, io, this)"


class KOptionalStruct(Construct):  # type: ignore[misc]
    """A nullable struct field: int8 -1 for null, 1 then the struct when present."""

    def __init__(self, subcon: Construct) -> None:
        super().__init__()
        self.subcon = subcon

    def _parse(self, stream: BytesIO, context: Any, path: str) -> Any:
        marker = wp.INT8.unpack(wp.read_exact(stream, 1))[0]
        if marker < 0:
            return None
        return self.subcon._parsereport(stream, context, path)

    def _build(self, obj: Any, stream: BytesIO, context: Any, path: str) -> Any:
        if obj is None:
            stream.write(b"\xff")
            return obj
        stream.write(b"\x01")
        return self.subcon._build(obj, stream, context, path)

    def _sizeof(self, context: Any, path: str) -> int:
        raise _no_sizeof(path)

    def _emitparse(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"parse_koptional_{code.allocateId()}"
        code.append(f"""
            def {fname}(io, this):
                if read_exact(io, 1)[0] >= 0x80:
                    return None
                return {self.subcon._compileparse(code)}
        """)
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        fname = f"build_koptional_{code.allocateId()}"
        code.append(f"""
            def {fname}(obj, io, this):
                if obj is None:
                    io.write(b'\\xff')
                    return obj
                io.write(b'\\x01')
                return {self.subcon._compilebuild(code)}
        """)
        return f"{fname}(obj, io, this)"


@dataclass(slots=True)
class Field:
    """One field of a struct at one version.

    ``con`` is None when the version does not carry the field (it then parses to its
    default and is never written); ``default`` is Python source evaluated in
    ``DEFAULT_NAMESPACE``; ``tag`` is set for tagged fields.
    """

    name: str
    con: Construct | None
    default: str
    tag: int | None = None


def F(name: str, con: Construct, default: str) -> Field:
    return Field(name, con, default)


def T(tag: int, name: str, con: Construct, default: str) -> Field:
    return Field(name, con, default, tag)


def A(name: str, default: str) -> Field:
    return Field(name, None, default)


def _tag_is_default_test(field: Field) -> str:
    """Source of a test on ``obj`` that is true when a tagged value must be written."""
    if field.default == "None":
        return "obj is not None"
    if field.default == "[]":
        return "obj is None or len(obj) > 0"
    return f"obj != {field.default}"


class KStruct(Construct):  # type: ignore[misc]
    """A Kafka struct at one version: fields in order, then (flexible) tagged fields."""

    def __init__(self, name: str, fields: list[Field], flexible: bool) -> None:
        super().__init__()
        self.struct_name = name
        self.fields = fields
        self.flexible = flexible
        self.tagged = {f.tag: f for f in fields if f.tag is not None and f.con is not None}
        # Defaults are source text written by the generator (literals, ZERO_UUID,
        # Container(...)): the compiled code inlines the same text, so both agree.
        self._factories = {f.name: eval("lambda: " + f.default, DEFAULT_NAMESPACE) for f in fields}

    # -- interpreted ------------------------------------------------------------

    def _parse(self, stream: BytesIO, context: Any, path: str) -> Container:
        result = Container()
        for f in self.fields:
            if f.con is None or f.tag is not None:
                result[f.name] = self._factories[f.name]()
            else:
                result[f.name] = f.con._parsereport(stream, context, f"{path} -> {f.name}")
        if self.flexible:
            unknown = []
            for _ in range(wp.check_count(stream, wp.read_uvarint(stream))):
                tag, size, end = wp.read_tagged_header(stream)
                known = self.tagged.get(tag)
                if known is None:
                    unknown.append((tag, wp.read_exact(stream, size)))
                else:
                    assert known.con is not None
                    result[known.name] = known.con._parsereport(stream, context, path)
                wp.finish_tagged_field(stream, tag, end)
            if unknown:
                result["_unknown_tags"] = unknown
        return result

    def _build(self, obj: Any, stream: BytesIO, context: Any, path: str) -> Any:
        if obj is None:
            raise wp.null_field(self.struct_name)
        for f in self.fields:
            if f.con is None or f.tag is not None:
                continue
            value = obj.get(f.name, _MISSING)
            if value is _MISSING:
                value = self._factories[f.name]()
            f.con._build(value, stream, context, f"{path} -> {f.name}")
        if self.flexible:
            tagged: list[tuple[int, bytes]] = []
            for tag, f in self.tagged.items():
                assert f.con is not None
                con = f.con
                default = self._factories[f.name]()
                value = obj.get(f.name, default)
                data = wp.build_to_bytes(
                    lambda v, s, c, con=con: con._build(v, s, c, path), value, context
                )
                default_data = wp.build_to_bytes(
                    lambda v, s, c, con=con: con._build(v, s, c, path), default, context
                )
                if data != default_data:
                    tagged.append((tag, data))
            tagged.extend(obj.get("_unknown_tags") or ())
            wp.write_tagged_section(stream, tagged)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise _no_sizeof(path)

    # -- compiled -----------------------------------------------------------------

    def _emitparse(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        ident = code.allocateId()
        fname = f"parse_kstruct_{ident}"
        lines = [f"def {fname}(io, this):", "    r = Container()"]
        group: list[Field] = []

        def flush() -> None:
            if not group:
                return
            fmt = ">" + "".join(_fixed_format(f.con) or "" for f in group)
            sname = f"fmt_{ident}_{len(lines)}"
            code.append(f"{sname} = _struct.Struct({fmt!r})")
            targets = ", ".join(f"r[{f.name!r}]" for f in group)
            lines.append(f"    ({targets},) = {sname}.unpack(io.read({struct.calcsize(fmt)}))")
            group.clear()

        for f in self.fields:
            if f.con is not None and f.tag is None and _fixed_format(f.con):
                group.append(f)
                continue
            flush()
            if f.con is None or f.tag is not None:
                lines.append(f"    r[{f.name!r}] = {f.default}")
            else:
                lines.append(f"    r[{f.name!r}] = {f.con._compileparse(code)}")
        flush()
        if self.flexible:
            lines.append("    n = read_uvarint(io)")
            lines.append("    if n:")
            lines.append("        check_count(io, n)")
            lines.append("        unknown = []")
            lines.append("        for _ in range(n):")
            lines.append("            tag, size, end = read_tagged_header(io)")
            branch = "if"
            for tag, f in sorted(self.tagged.items()):
                assert f.con is not None
                lines.append(f"            {branch} tag == {tag}:")
                lines.append(f"                r[{f.name!r}] = {f.con._compileparse(code)}")
                branch = "elif"
            if self.tagged:
                lines.append("            else:")
                lines.append("                unknown.append((tag, read_exact(io, size)))")
            else:
                lines.append("            unknown.append((tag, read_exact(io, size)))")
            lines.append("            finish_tagged_field(io, tag, end)")
            lines.append("        if unknown:")
            lines.append("            r['_unknown_tags'] = unknown")
        lines.append("    return r")
        code.append("\n".join(lines))
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_RUNTIME_IMPORTS)
        ident = code.allocateId()
        fname = f"build_kstruct_{ident}"
        lines = [
            f"def {fname}(obj, io, this):",
            "    if obj is None:",
            f"        raise null_field({self.struct_name!r})",
            "    d = obj",
            "    g = d.get",
        ]
        group: list[Field] = []

        def flush() -> None:
            if not group:
                return
            fmt = ">" + "".join(_fixed_format(f.con) or "" for f in group)
            sname = f"fmt_{ident}_{len(lines)}"
            code.append(f"{sname} = _struct.Struct({fmt!r})")
            args = ", ".join(f"g({f.name!r}, {f.default})" for f in group)
            lines.append(f"    io.write({sname}.pack({args}))")
            group.clear()

        for f in self.fields:
            if f.con is None or f.tag is not None:
                continue
            if _fixed_format(f.con):
                group.append(f)
                continue
            flush()
            lines.append(f"    obj = g({f.name!r}, {_build_default(f)})")
            lines.append(f"    {f.con._compilebuild(code)}")
        flush()
        if self.flexible:
            if not self.tagged:
                lines.append("    unknown = g('_unknown_tags')")
                lines.append("    if unknown:")
                lines.append("        write_tagged_section(io, list(unknown))")
                lines.append("    else:")
                lines.append("        io.write(b'\\x00')")
            else:
                lines.append("    tagged = list(g('_unknown_tags') or ())")
                for tag, f in sorted(self.tagged.items()):
                    assert f.con is not None
                    helper = f"build_tagged_{ident}_{tag}"
                    code.append(f"""
                        def {helper}(obj, io, this):
                            {f.con._compilebuild(code)}
                    """)
                    lines.append(f"    obj = g({f.name!r}, {_build_default(f)})")
                    if _fixed_format(f.con) or f.default in ("None", "[]") or not _is_struct(f):
                        lines.append(f"    if {_tag_is_default_test(f)}:")
                        lines.append(
                            f"        tagged.append(({tag}, build_to_bytes({helper}, obj, this)))"
                        )
                    else:
                        default_bytes = f"default_tagged_{ident}_{tag}"
                        code.append(
                            f"{default_bytes} = build_to_bytes({helper}, {_build_default(f)}, None)"
                        )
                        # A missing struct is the default: skip building it at all.
                        lines[-1] = f"    obj = g({f.name!r}, None)"
                        lines.append("    if obj is not None:")
                        lines.append(f"        data = build_to_bytes({helper}, obj, this)")
                        lines.append(f"        if data != {default_bytes}:")
                        lines.append(f"            tagged.append(({tag}, data))")
                lines.append("    if tagged:")
                lines.append("        write_tagged_section(io, tagged)")
                lines.append("    else:")
                lines.append("        io.write(b'\\x00')")
        lines.append("    return d")
        code.append("\n".join(lines))
        return f"{fname}(obj, io, this)"


def _is_struct(f: Field) -> bool:
    con = f.con
    return isinstance(con, (KStruct, KOptionalStruct))


def _build_default(f: Field) -> str:
    # Building never mutates a default, so a missing array builds from an empty tuple
    # and a missing struct from an empty mapping (whose fields take their own defaults).
    if f.default == "[]":
        return "()"
    if f.default.startswith("Container("):
        return "{}"
    return f.default


_MISSING = object()
