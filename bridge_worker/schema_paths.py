"""What the schema accepts at a place in a request, for error replies that say how to fix it.

msgspec reports *where* a request went wrong (``$.sampler``, ``$.search_space[...]``); this walks
the params type along that path, following the request itself through tagged unions (a sampler's
``type`` decides its options), and lists the field names, or the ``type`` tags, accepted there.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import inspect as mi

_SEGMENT = re.compile(r"\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+|\.\.\.)\]")


def allowed_fields(root: type, path: str, document: Any, unknown: str) -> list[str] | None:
    """The fields accepted by the object at ``path`` (which had the unknown field ``unknown``)."""
    found = _walk(mi.type_info(root), path, document, unknown)
    if found is None:
        return None
    info, value = found
    struct = _choose(info, value, unknown)
    if not isinstance(struct, mi.StructType):
        return None
    names = [f.encode_name for f in struct.fields]
    if struct.tag_field is not None:
        names.append(struct.tag_field)
    return sorted(names)


def allowed_tags(root: type, path: str, document: Any) -> list[str] | None:
    """The ``type`` tags accepted at ``path`` when ``path`` ends in a union's tag field."""
    head, _, last = path.rpartition(".")
    found = _walk(mi.type_info(root), head, document, None)
    if found is None:
        return None
    union = _strip_none(found[0])
    if not isinstance(union, mi.UnionType):
        return None
    structs = [t for t in union.types if isinstance(t, mi.StructType)]
    if not structs or any(s.tag_field != last for s in structs):
        return None
    return sorted(str(s.tag) for s in structs)


def allowed_values(root: type, path: str, document: Any) -> list[Any] | None:
    """The values of the closed set (a ``Literal``) accepted at ``path``."""
    found = _walk(mi.type_info(root), path, document, None)
    if found is None:
        return None
    info = _strip_none(found[0])
    members = info.types if isinstance(info, mi.UnionType) else (info,)
    for member in members:
        if isinstance(member, mi.LiteralType):
            return sorted(member.values, key=str)
    return None


def _walk(info: mi.Type, path: str, value: Any, unknown: str | None) -> tuple[mi.Type, Any] | None:
    position = 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            return None
        position = match.end()
        info = _choose(info, value, unknown)
        name, index = match.group("name"), match.group("index")
        if name is not None and isinstance(info, mi.StructType):
            field = next((f for f in info.fields if f.encode_name == name), None)
            if field is None:
                return None
            info = field.type
            value = value.get(name) if isinstance(value, dict) else None
        elif index == "..." and isinstance(info, mi.DictType):
            info = info.value_type
            value = _entry_with(value, unknown)
        elif index is not None and isinstance(info, mi.ListType):
            info = info.item_type
            i = int(index)
            value = value[i] if isinstance(value, list) and i < len(value) else None
        else:
            return None
    return info, value


def _choose(info: mi.Type, value: Any, unknown: str | None) -> mi.Type:
    """The member of a union the request's value selects (by its tag), else the type itself."""
    info = _strip_none(info)
    if not isinstance(info, mi.UnionType):
        return info
    structs = [t for t in info.types if isinstance(t, mi.StructType)]
    if isinstance(value, dict):
        for struct in structs:
            if struct.tag_field is not None and value.get(struct.tag_field) == struct.tag:
                return struct
    return structs[0] if len(structs) == 1 else info


def _strip_none(info: mi.Type) -> mi.Type:
    if isinstance(info, mi.UnionType):
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(members) == 1:
            return members[0]
        if len(members) < len(info.types):
            return mi.UnionType(tuple(members))
    return info


def _entry_with(mapping: Any, key: str | None) -> Any:
    """msgspec does not say which dict entry failed: take the one holding the unknown field."""
    if not isinstance(mapping, dict):
        return None
    for entry in mapping.values():
        if isinstance(entry, dict) and key in entry:
            return entry
    return None


def decode_loosely(raw: bytes | None) -> Any:
    try:
        return msgspec.json.decode(raw or b"{}")
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
