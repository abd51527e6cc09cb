"""msgspec's validation messages turned into ``invalid_params`` replies that say how to fix them.

This is the one module that reads msgspec's English messages (``Object contains unknown field
`x` - at `$.sampler```, ``Expected `int` <= 64``, ...).
``tests/protocol/test_param_errors.py`` pins those
formats against the installed msgspec, so an upgrade that rewords them fails there and nowhere else.

msgspec says *where* a request went wrong (``$.sampler``, ``$.search_space[...]``); the helpers
below walk the params type along that path, following the request itself through tagged unions
(a sampler's ``type`` decides its options), and list the field names, ``type`` tags or closed-set
values accepted there.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import msgspec
from msgspec import inspect as mi

from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.limits import HARD_BOUNDS, Limits

_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")
_OVER_BOUND = re.compile(r"^Expected `(?P<type>int|str|array)`(?: of length)? <= (?P<bound>\d+)")
_BOUND_LIMITS = {
    ("int", HARD_BOUNDS["max_ask"]): ("max_ask", "trials asked at once (n)"),
    ("str", HARD_BOUNDS["max_name_length"]): ("max_name_length", "length of a name"),
    ("array", HARD_BOUNDS["max_add_trials"]): ("max_add_trials", "trials added at once"),
}
"""Schema bounds that are also the ceiling of an operator limit: a value over them is over the
operator's limit too, and is answered as such (``limit_exceeded`` naming the worker's maximum)."""
_NULL_FOR_FLOAT = "Expected `float`, got `null`"


def params_error(
    message: str,
    params_type: type[msgspec.Struct],
    raw_params: bytes | None = None,
    limits: Limits | None = None,
) -> BridgeError:
    """Turn msgspec's ``... - at `$.n``` into ``invalid_params`` naming ``$.params.n``.

    For an unknown field the error also lists the fields allowed at that place (for a sampler,
    the options of the sampler its ``type`` names), for an unknown ``type`` the types there, and
    for a value outside a closed set (``direction``, ``state``, ...) the values, so a typo is
    answered with the right spelling. A value over a bound that is also an operator limit is
    ``limit_exceeded`` naming this worker's maximum; a ``null`` where a float belongs says that
    JSON has no NaN.
    """
    match = _AT_PATH.search(message)
    path = match.group("path") if match else ""
    text = message[: match.start()] if match else message
    over = _OVER_BOUND.match(text)
    if over and limits is not None:
        limit = _BOUND_LIMITS.get((over.group("type"), int(over.group("bound"))))
        if limit is not None:
            return _limit_error(limits, *limit, _value_at(raw_params, path))
    if text.startswith(_NULL_FOR_FLOAT):
        text += (
            " (JSON has no NaN: a NaN encoded as null is not a number; tell a failed evaluation "
            'as "state":"fail")'
        )
    field = f"$.params{path}"
    data: dict[str, Any] = {"field": field}
    unknown = _UNKNOWN_FIELD.match(text)
    allowed = None
    with contextlib.suppress(Exception):  # a hint: never let it turn into an internal_error
        if unknown:
            name = unknown.group("name")
            data["field"] = f"{field}.{name}"
            allowed = allowed_fields(params_type, path, decode_loosely(raw_params), name)
        elif text.startswith("Invalid value") and path.endswith(".type"):
            allowed = allowed_tags(params_type, path, decode_loosely(raw_params))
        elif text.startswith("Invalid enum value"):
            allowed = allowed_values(params_type, path, decode_loosely(raw_params))
    if allowed is not None:
        data["allowed"] = allowed
    return BridgeError(ErrorKind.INVALID_PARAMS, f"{text} - at `{field}`", **data)


def _limit_error(limits: Limits, limit: str, what: str, value: int | None) -> BridgeError:
    maximum: int = getattr(limits, limit)
    flag = f"--{limit.replace('_', '-')}"
    if value is not None:
        try:
            limits.check(limit, what, value)
        except BridgeError as error:
            return error
    return BridgeError(
        ErrorKind.LIMIT_EXCEEDED,
        f"{what} over this worker's maximum of {maximum} ({flag})",
        limit=limit,
        max=maximum,
    )


def _value_at(raw_params: bytes | None, path: str) -> int | None:
    """The number (or a string's or array's length) at a simple path like ``.n`` or ``.study``."""
    document = decode_loosely(raw_params)
    for name in path.split(".")[1:]:
        document = document.get(name) if isinstance(document, dict) else None
    if isinstance(document, str | list):
        return len(document)
    return document if isinstance(document, int) and not isinstance(document, bool) else None


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
