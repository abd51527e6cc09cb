"""Which study a name means *now*: a study's identity that storage ids cannot fake.

Several workers on one durable storage each cache the studies they serve. A cached entry holds a
storage study id, and ids are not proof: SQLite hands a deleted study's id to the next study
created, so a worker whose study was deleted and replaced meanwhile would write into, answer from
or delete a study nobody named. Every study therefore carries a random token (study system attr
``optuna_bridge:identity``), written when a worker of this version creates or imports it, or the
first time one loads a study that has none (made by an older version or by plain Optuna). A
study's identity is its (id, token) pair; a cached entry is used only while the storage still
says the name means that pair.

Reading the identity is one indexed read: on RDB storages one SQL query (the name's unique index
joined with the attribute's (study_id, key) unique index, :mod:`bridge_worker.storage._rdb`), on
journal storages one catch-up read of the log's tail (:mod:`bridge_worker.storage._journal`).
``scripts/identity_cost.py`` measures it. Each backend reads it its own way
(:meth:`~bridge_worker.storage.backend.Backend.read_identity`); the functions here go to the
backend that opened the storage, and :func:`read_by_api` is the answer for any storage.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

IDENTITY_ATTR = "optuna_bridge:identity"
"""Study system attr holding the study's random identity token."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The study a name resolves to: its storage id and its token (None: not stamped yet)."""

    study_id: int
    token: str | None


def new_token() -> str:
    return secrets.token_hex(16)


def read_identity(storage: BaseStorage, name: str) -> Identity | None:
    """The identity of the study named ``name``, or None when there is no such study."""
    from bridge_worker.storage.backend import opened_by  # the table imports this module

    return opened_by(storage).read_identity(storage, name)


def delete_if_identical(storage: BaseStorage, identity: Identity) -> bool:
    """Delete the study only if it still has this identity; False (nothing deleted) otherwise.

    On RDB storages the check and the delete are one transaction; on journal and in-memory
    storages ids are never reused, so deleting by id cannot hit another study; a study already
    gone is reported as False.
    """
    from bridge_worker.storage.backend import opened_by  # the table imports this module

    return opened_by(storage).delete_if_identical(storage, identity)


def read_by_api(storage: BaseStorage, name: str) -> Identity | None:
    """:func:`read_identity` through Optuna's public storage API (two reads)."""
    try:
        study_id = storage.get_study_id_from_name(name)
        token = storage.get_study_system_attrs(study_id).get(IDENTITY_ATTR)
    except KeyError:
        return None
    return Identity(study_id, token if isinstance(token, str) else None)


def delete_by_id(storage: BaseStorage, identity: Identity) -> bool:
    """:func:`delete_if_identical` where ids are never reused: deleting by id cannot hit another
    study."""
    try:
        storage.delete_study(identity.study_id)
    except KeyError:
        return False
    return True
