"""What a storage can hold, checked before anything is written.

Optuna's SQL schema has limits the worker would otherwise meet halfway through a write:
PostgreSQL refuses a NUL character in any text column (a study name, a parameter name, an attr
key: ``ValueError``, which was an ``internal_error``), attr keys are ``VARCHAR(512)`` (PostgreSQL
refuses a longer one at commit: a ``storage_error`` that tells the parent to retry a fault that
never clears), intermediate steps are 32-bit ``INTEGER`` columns, and SQLite's driver cannot even
bind an integer of 2^63 or more (``OverflowError``). Each is an ``invalid_params`` here, naming the
bound, before the first write.

Names (study, parameter, attr keys) follow one rule on every storage, so a study moves between
storages (snapshots, ``import``) without surprises; the step bound depends on the storage: SQL
storages hold 32-bit steps, the others any 63-bit integer (each backend's ``max_step``,
:mod:`bridge_worker.storage.backend`).
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge_worker.wire.errors import invalid_params

MAX_KEY_LENGTH = 512
"""Characters in a name or attr key (Optuna's SQL columns are VARCHAR(512))."""
MAX_INT = 2**63 - 1
"""The largest integer any storage can bind (SQLite's driver refuses 2^63)."""
MAX_SQL_STEP = 2**31 - 1
"""Intermediate-value steps are 32-bit INTEGER columns in Optuna's SQL schema."""


def check_name_text(name: str, field: str, what: str = "a name") -> None:
    """No NUL character (PostgreSQL cannot store one), at most ``MAX_KEY_LENGTH`` characters."""
    if "\x00" in name:
        raise invalid_params(field, f"{what} cannot contain a NUL character (U+0000)")
    if len(name) > MAX_KEY_LENGTH:
        raise invalid_params(field, f"{what} has {len(name)} characters; at most {MAX_KEY_LENGTH}")


def check_keys(keys: Iterable[str], field: str) -> None:
    """Attr keys: the rule of :func:`check_name_text` (``field`` is the attrs' object)."""
    for key in keys:
        check_name_text(key, f"{field}.{key[:64]}", "an attr key")


def check_step(step: int, bound: int, field: str) -> None:
    if step > bound:
        raise invalid_params(field, f"step {step} is over {bound}, the largest this storage holds")
