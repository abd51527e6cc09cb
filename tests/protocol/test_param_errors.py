"""msgspec's message formats, pinned: param_errors.py is the one module that parses them.

If a msgspec upgrade rewords a message, these tests fail here (and the hints in error replies
would otherwise silently disappear). Each test decodes a real bad request with the real schema
and checks the message shape the parser relies on, then the reply built from it.
"""

from __future__ import annotations

import msgspec
import pytest

from bridge_worker import param_errors
from bridge_worker.errors import ErrorKind
from bridge_worker.limits import HARD_BOUNDS, Limits
from bridge_worker.schema import AskParams, CreateParams, TellParams


def _message(params_type: type[msgspec.Struct], raw: bytes) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(raw, type=params_type)
    return str(caught.value)


def test_path_suffix_format() -> None:
    message = _message(AskParams, b'{"study":"s","n":"x"}')
    match = param_errors._AT_PATH.search(message)
    assert match is not None, message
    assert match.group("path") == ".n"


def test_unknown_field_format() -> None:
    raw = b'{"study":"s","sampler":{"type":"tpe","n_startup":3}}'
    message = _message(CreateParams, raw)
    assert param_errors._UNKNOWN_FIELD.match(message), message
    error = param_errors.params_error(message, CreateParams, raw)
    assert error.kind is ErrorKind.INVALID_PARAMS
    assert error.data["field"] == "$.params.sampler.n_startup"
    assert "n_startup_trials" in error.data["allowed"]


def test_over_bound_formats() -> None:
    n = HARD_BOUNDS["max_ask"] + 1
    message = _message(AskParams, b'{"study":"s","n":%d}' % n)
    over = param_errors._OVER_BOUND.match(message)
    assert over is not None, message
    assert (over.group("type"), int(over.group("bound"))) == ("int", HARD_BOUNDS["max_ask"])
    name = "x" * (HARD_BOUNDS["max_name_length"] + 1)
    message = _message(AskParams, b'{"study":"%s"}' % name.encode())
    over = param_errors._OVER_BOUND.match(message)
    assert over is not None, message
    assert over.group("type") == "str"
    error = param_errors.params_error(
        message, AskParams, b'{"study":"%s"}' % name.encode(), Limits()
    )
    assert error.kind is ErrorKind.LIMIT_EXCEEDED
    assert error.data["limit"] == "max_name_length"


def test_null_for_float_format() -> None:
    raw = b'{"study":"s","number":0,"values":[null]}'
    message = _message(TellParams, raw)
    assert message.startswith(param_errors._NULL_FOR_FLOAT), message
    error = param_errors.params_error(message, TellParams, raw)
    assert "JSON has no NaN" in error.message


def test_invalid_tag_format() -> None:
    raw = b'{"study":"s","sampler":{"type":"tpee"}}'
    message = _message(CreateParams, raw)
    assert message.startswith("Invalid value"), message
    error = param_errors.params_error(message, CreateParams, raw)
    assert error.data["field"] == "$.params.sampler.type"
    assert "tpe" in error.data["allowed"]


def test_invalid_enum_format() -> None:
    raw = b'{"study":"s","direction":"up"}'
    message = _message(CreateParams, raw)
    assert message.startswith("Invalid enum value"), message
    error = param_errors.params_error(message, CreateParams, raw)
    assert error.data["allowed"] == ["maximize", "minimize"]
