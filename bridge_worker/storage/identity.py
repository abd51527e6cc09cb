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
joined with the attribute's (study_id, key) unique index), on journal storages one catch-up read
of the log's tail. ``scripts/identity_cost.py`` measures it. This module is the one place that
touches Optuna's private storage internals for it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage

IDENTITY_ATTR = "optuna_bridge:identity"
"""Study system attr holding the study's random identity token."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The study a name resolves to: its storage id and its token (None: not stamped yet)."""

    study_id: int
    token: str | None


def new_token() -> str:
    return secrets.token_hex(16)


def is_shared(storage: BaseStorage) -> bool:
    """Whether other processes can change the storage under us (in-memory storage is private
    to this worker, whose own cache is always right)."""
    return not isinstance(storage, InMemoryStorage)


def read_identity(storage: BaseStorage, name: str) -> Identity | None:
    """The identity of the study named ``name``, or None when there is no such study."""
    if isinstance(storage, RDBStorage):
        return _read_rdb(storage, name)
    if isinstance(storage, JournalStorage):
        return _read_journal(storage, name)
    try:
        study_id = storage.get_study_id_from_name(name)
        token = storage.get_study_system_attrs(study_id).get(IDENTITY_ATTR)
    except KeyError:
        return None
    return Identity(study_id, token if isinstance(token, str) else None)


def delete_if_identical(storage: BaseStorage, identity: Identity) -> bool:
    """Delete the study only if it still has this identity; False (nothing deleted) otherwise.

    On RDB storages the check and the delete are one transaction: the token row is deleted
    first (which takes the write lock, and matches only the right study), then the study. On
    journal and in-memory storages ids are never reused, so deleting by id cannot hit another
    study; a study already gone is reported as False.
    """
    if isinstance(storage, RDBStorage) and identity.token is not None:
        return _delete_rdb(storage, identity)
    try:
        storage.delete_study(identity.study_id)
    except KeyError:
        return False
    return True


def _read_rdb(storage: RDBStorage, name: str) -> Identity | None:
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    attr = models.StudySystemAttributeModel
    study = models.StudyModel
    with _create_scoped_session(storage.scoped_session) as session:
        row = (
            session.query(study.study_id, attr.value_json)
            .outerjoin(
                attr, sqlalchemy.and_(attr.study_id == study.study_id, attr.key == IDENTITY_ATTR)
            )
            .filter(study.study_name == name)
            .one_or_none()
        )
    if row is None:
        return None
    token = json.loads(row[1]) if row[1] is not None else None
    return Identity(int(row[0]), token if isinstance(token, str) else None)


def _delete_rdb(storage: RDBStorage, identity: Identity) -> bool:
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    attr = models.StudySystemAttributeModel

    class _Mismatch(Exception):
        pass

    try:
        with _create_scoped_session(storage.scoped_session) as session:
            matched = (
                session.query(attr)
                .filter(
                    attr.study_id == identity.study_id,
                    attr.key == IDENTITY_ATTR,
                    attr.value_json == json.dumps(identity.token),
                )
                .delete(synchronize_session=False)
            )
            if matched != 1:
                raise _Mismatch
            session.delete(models.StudyModel.find_or_raise_by_id(identity.study_id, session))
    except _Mismatch:
        return False
    return True


def _read_journal(storage: JournalStorage, name: str) -> Identity | None:
    with storage._thread_lock:
        storage._sync_with_backend()
        for study in storage._replay_result.get_all_studies():
            if study.study_name == name:
                token = study.system_attrs.get(IDENTITY_ATTR)
                return Identity(study._study_id, token if isinstance(token, str) else None)
    return None
