"""The heavy half of the RDB backend (:mod:`bridge_worker.storage.rdb`): the one module that
touches Optuna's private RDB internals (its SQLAlchemy models and sessions).

It holds the RDB storage with its heartbeat and compare-and-set fixes
(:class:`HeartbeatRDBStorage`), the identity read and identical-delete in one transaction each,
an import's swap in one transaction, trial counts of every study in one query, and ``delete`` in
short transactions, described here.

``delete`` on SQL storages in short transactions: hide the study at once, then remove its rows.

Optuna's ``RDBStorage.delete_study`` deletes through the ORM cascade, loading every trial, param,
value and attr row as an object, in one transaction: on SQLite that held the file's write lock
for minutes (a 25,600-trial study 114 s), and other workers on the file got ``storage_error``
when SQLite's busy timeout passed. Here a delete goes in three steps:

1. **hide** (one short transaction): the study is matched by its identity token (only the study
   the name meant when the frame checked it), renamed to :data:`DELETING_PREFIX` + its token,
   its token dropped and its deleter recorded (attr :data:`DELETING_ATTR`). From this commit on
   no reader finds it: the name is free, ``list`` hides the staging prefix, and a worker that
   cached it sees its identity gone. The delete is final here, for every reader at once;
   nobody ever sees a study with part of its trials;
2. **purge**: its trials are deleted :data:`CHUNK` at a time, one transaction per chunk of bulk
   ``DELETE`` statements (each child table of ``trials``, then ``trials``), so other workers on
   the file wait at most about one chunk (on SQLite the file is then left free as long as the
   chunk took: SQLite's waiting writers poll, they are not queued); between chunks a stop
   signal may end the frame;
3. **drop** (one transaction): what is left of its trials (a trial another worker created in
   it meanwhile), its own tables and the study row.

A study left hidden (its deleter was killed, or stopped by a signal after step 1) is purged by the
next worker that opens the storage, once its deleter is gone (:func:`purge_abandoned`, the same
liveness check as for imports). This module is the one place ``delete`` touches Optuna's private
RDB models; :data:`TRIAL_TABLES` and :data:`STUDY_TABLES` list every table it deletes from, and a
test fails when an Optuna upgrade adds a table they miss.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import optuna
import structlog
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from bridge_worker.storage.identity import IDENTITY_ATTR, Identity
from bridge_worker.storage.writers import STAGING_PREFIX, writer_alive, writer_record

DELETING_PREFIX = STAGING_PREFIX + "deleting:"
"""Names of studies being deleted (hidden from readers as every staging name is)."""
DELETING_ATTR = "optuna_bridge:deleting"
"""System attr of a study being deleted: who deletes it (:func:`writer_record`)."""
CHUNK = 200
"""Trials deleted per transaction: other workers on a SQLite file wait at most this long."""

DROP_ATTEMPTS = 3
"""Tries of the last step when PostgreSQL refuses it (a trial was added meanwhile: its foreign
key); each try deletes the trials added before it."""

_log = structlog.get_logger("bridge_worker.storage._rdb")


def _models() -> Any:
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    from optuna.storages._rdb import models

    return models


def trial_tables() -> tuple[Any, ...]:
    """The models of every table whose rows belong to one trial (deleted before ``trials``)."""
    models = _models()
    return (
        models.TrialUserAttributeModel,
        models.TrialSystemAttributeModel,
        models.TrialParamModel,
        models.TrialValueModel,
        models.TrialIntermediateValueModel,
        models.TrialHeartbeatModel,
    )


def study_tables() -> tuple[Any, ...]:
    """The models of every table whose rows belong to one study, besides ``trials``."""
    models = _models()
    return (
        models.StudyDirectionModel,
        models.StudyUserAttributeModel,
        models.StudySystemAttributeModel,
    )


def delete_study(
    storage: RDBStorage, identity: Identity, should_stop: Callable[[], bool]
) -> bool | None:
    """Delete the study with this identity (it must have a token). None: it no longer has it
    (deleted or replaced by another worker; nothing deleted). True: deleted, rows and all.
    False: deleted for every reader, but a stop signal came before all its rows were removed
    (the next worker to open the storage removes them)."""
    assert identity.token is not None
    if not _hide(storage, identity):
        return None
    return purge(storage, identity.study_id, should_stop)


def purge_abandoned(storage: RDBStorage, should_stop: Callable[[], bool]) -> int:
    """Finish the deletes whose deleter is gone (killed, or stopped by a signal); how many."""
    import sqlalchemy
    from optuna.storages._rdb.storage import _create_scoped_session

    models = _models()
    study, attr = models.StudyModel, models.StudySystemAttributeModel
    with _create_scoped_session(storage.scoped_session) as session:
        rows = session.execute(
            sqlalchemy.select(study.study_id, attr.value_json)
            .outerjoin(
                attr, sqlalchemy.and_(attr.study_id == study.study_id, attr.key == DELETING_ATTR)
            )
            .where(study.study_name.startswith(DELETING_PREFIX, autoescape=True))
        ).all()
    done = 0
    for study_id, owner in rows:
        if owner is not None and writer_alive(json.loads(owner)):
            continue
        if not purge(storage, int(study_id), should_stop):
            break
        _log.warning("study_delete_completed", study_id=int(study_id))
        done += 1
    return done


def purge(storage: RDBStorage, study_id: int, should_stop: Callable[[], bool]) -> bool:
    """Remove a hidden study's rows, :data:`CHUNK` trials per transaction, then the study;
    False when ``should_stop`` said so between two chunks (the study stays hidden)."""
    import sqlalchemy
    from optuna.storages._rdb.storage import _create_scoped_session

    trial = _models().TrialModel
    gives_way = storage.engine.dialect.name == "sqlite"
    for attempt in range(DROP_ATTEMPTS):
        while True:
            started = time.monotonic()
            with _create_scoped_session(storage.scoped_session) as session:
                ids = (
                    session.execute(
                        sqlalchemy.select(trial.trial_id)
                        .where(trial.study_id == study_id)
                        .order_by(trial.trial_id)
                        .limit(CHUNK)
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    break
                _delete_trials(session, trial.trial_id.in_(ids))
            if gives_way:
                # SQLite has no queue of writers: one that found the file locked sleeps (1 ms,
                # then longer, up to 100 ms) and looks again, and would keep finding the next
                # chunk under way. Free for as long as a chunk took, the file is free half the
                # time whenever a waiting worker looks: it gets in within a few of its sleeps.
                time.sleep(time.monotonic() - started)
            if should_stop():
                _log.warning("study_delete_deferred", study_id=study_id)
                return False
        try:
            _drop(storage, study_id)
            return True
        except sqlalchemy.exc.IntegrityError:
            if attempt == DROP_ATTEMPTS - 1:
                raise
    return True  # not reached: the last attempt returns or raises


def _drop(storage: RDBStorage, study_id: int) -> None:
    """Step 3 (one transaction): the study's last trials (another worker's ask that had passed
    its identity check before the study was hidden may have added one), its tables, its row."""
    import sqlalchemy
    from optuna.storages._rdb.storage import _create_scoped_session

    trial = _models().TrialModel
    with _create_scoped_session(storage.scoped_session) as session:
        _delete_trials(session, trial.study_id == study_id)
        for model in study_tables():
            session.execute(sqlalchemy.delete(model).where(model.study_id == study_id))
        study = _models().StudyModel
        session.execute(sqlalchemy.delete(study).where(study.study_id == study_id))


def _delete_trials(session: Any, which: Any) -> None:
    """Bulk-delete the trials ``which`` selects (a condition on ``trials`` alone: MySQL refuses
    a ``DELETE`` whose subquery reads the table it deletes from) and every row that belongs to
    them, children first (PostgreSQL enforces the foreign keys)."""
    import sqlalchemy

    trial = _models().TrialModel
    ids = sqlalchemy.select(trial.trial_id).where(which).scalar_subquery()
    for model in trial_tables():
        session.execute(
            sqlalchemy.delete(model).where(model.trial_id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
    session.execute(
        sqlalchemy.delete(trial).where(which), execution_options={"synchronize_session": False}
    )


def _hide(storage: RDBStorage, identity: Identity) -> bool:
    """Step 1 (one transaction): rename the study out of every reader's sight, drop its token,
    record its deleter. False (nothing changed) when the study no longer has this identity."""
    import sqlalchemy
    from optuna.storages._rdb.storage import _create_scoped_session

    models = _models()
    study, attr = models.StudyModel, models.StudySystemAttributeModel
    with _create_scoped_session(storage.scoped_session) as session:
        deleted: Any = session.execute(
            sqlalchemy.delete(attr).where(
                attr.study_id == identity.study_id,
                attr.key == IDENTITY_ATTR,
                attr.value_json == json.dumps(identity.token),
            ),
            execution_options={"synchronize_session": False},
        )
        if deleted.rowcount != 1:
            session.rollback()
            return False
        session.execute(
            sqlalchemy.update(study)
            .where(study.study_id == identity.study_id)
            .values(study_name=DELETING_PREFIX + str(identity.token)),
            execution_options={"synchronize_session": False},
        )
        session.add(
            attr(
                study_id=identity.study_id,
                key=DELETING_ATTR,
                value_json=json.dumps(writer_record()),
            )
        )
    return True


# ---- identity, import swap and counts ----


def read_identity(storage: RDBStorage, name: str) -> Identity | None:
    """The identity in one SQL query (the name's unique index joined with the attr's), read on a
    plain connection: it runs before every frame about a cached study, where an ORM session and
    its commit cost ~3x the query (issue 24)."""
    try:
        with storage.engine.connect() as connection:
            row = connection.execute(_identity_query(), {"name": name}).one_or_none()
    except _sqlalchemy_error() as exc:  # as Optuna's own reads report a failing database
        raise optuna.exceptions.StorageInternalError(f"cannot read study {name!r}") from exc
    if row is None:
        return None
    token = json.loads(row[1]) if row[1] is not None else None
    return Identity(int(row[0]), token if isinstance(token, str) else None)


@functools.cache
def _identity_query() -> Any:
    """Built once: SQLAlchemy caches the compiled statement by the statement's shape."""
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    import sqlalchemy
    from optuna.storages._rdb import models

    attr = models.StudySystemAttributeModel
    study = models.StudyModel
    return (
        sqlalchemy.select(study.study_id, attr.value_json)
        .outerjoin(
            attr, sqlalchemy.and_(attr.study_id == study.study_id, attr.key == IDENTITY_ATTR)
        )
        .where(study.study_name == sqlalchemy.bindparam("name"))
    )


def _sqlalchemy_error() -> type[Exception]:
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def delete_if_identical(storage: RDBStorage, identity: Identity) -> bool:
    """Check and delete in one transaction: the token row is deleted first (which takes the
    write lock, and matches only the right study), then the study."""
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


def swap_staged(
    storage: RDBStorage,
    staging_id: int,
    staging_name: str,
    target: str,
    replaces: str | None,
    record_attr: str,
) -> None:
    """One transaction: delete the replaced study (matched by identity token), rename the staged
    one to the target name, drop its recovery record."""
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    attr = models.StudySystemAttributeModel
    study = models.StudyModel
    with _create_scoped_session(storage.scoped_session) as session:
        staged = (
            session.query(study)
            .filter(study.study_id == staging_id, study.study_name == staging_name)
            .one_or_none()
        )
        if staged is None:
            raise KeyError("staging study already swapped")
        if replaces is not None:
            old = (
                session.query(study)
                .join(attr, attr.study_id == study.study_id)
                .filter(
                    study.study_name == target,
                    attr.key == IDENTITY_ATTR,
                    attr.value_json == json.dumps(replaces),
                )
                .one_or_none()
            )
            if old is not None:
                session.delete(old)
                session.flush()  # the name is free before the rename below
        staged.study_name = target
        session.query(attr).filter(
            sqlalchemy.and_(attr.study_id == staging_id, attr.key == record_attr)
        ).delete(synchronize_session=False)


def has_waiting_trials(storage: RDBStorage, study_id: int) -> bool:
    """Whether the study holds an enqueued (``WAITING``) trial, on a plain connection."""
    try:
        with storage.engine.connect() as connection:
            row = connection.execute(_waiting_query(), {"study_id": study_id}).first()
    except _sqlalchemy_error() as exc:  # as Optuna's own reads report a failing database
        raise optuna.exceptions.StorageInternalError("cannot read the trial queue") from exc
    return row is not None


@functools.cache
def _waiting_query() -> Any:
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    import sqlalchemy
    from optuna.storages._rdb import models

    trial = models.TrialModel
    return (
        sqlalchemy.select(trial.trial_id)
        .where(trial.study_id == sqlalchemy.bindparam("study_id"))
        .where(trial.state == TrialState.WAITING)
        .limit(1)
    )


def count_trials(storage: RDBStorage, hidden_prefix: str) -> dict[int, tuple[int, int]]:
    """``{study_id: (n_trials, n_running)}`` for every study of an RDB storage whose name does
    not start with ``hidden_prefix``, in one query (one snapshot: a study being deleted, hidden
    under that prefix before its trials are removed, is either counted whole or absent)."""
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trial, study = models.TrialModel, models.StudyModel
    counts: dict[int, tuple[int, int]] = {}
    with _create_scoped_session(storage.scoped_session) as session:
        rows = (
            session.query(study.study_id, trial.state, sqlalchemy.func.count(trial.trial_id))
            .outerjoin(trial, trial.study_id == study.study_id)
            .filter(sqlalchemy.not_(study.study_name.startswith(hidden_prefix, autoescape=True)))
            .group_by(study.study_id, trial.state)
            .all()
        )
    for study_id, state, count in rows:
        total, running = counts.get(int(study_id), (0, 0))
        running += int(count) if state == TrialState.RUNNING else 0
        counts[int(study_id)] = (total + int(count), running)
    return counts


# ---- heartbeats ----


class HeartbeatRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, whose stale check also fails running trials that never got a
    heartbeat once their start is older than the grace period (Optuna skips them forever), and
    whose writes to a trial are a compare-and-set on its state on every database.

    Optuna reads the trial ``FOR UPDATE``, checks it is not finished, then writes; SQLite ignores
    ``FOR UPDATE``, so two workers finishing one trial at once both passed the check and the later
    write replaced the earlier. Every trial write here begins with a no-op ``UPDATE`` of the trial
    row in the same transaction (the thread's scoped session, which Optuna's own write then uses
    and commits): it takes SQLite's write lock (a row lock elsewhere) before the state is read,
    so exactly one finish wins and every other write to a finished trial gets
    ``UpdateFinishedTrialError``.
    """

    def _locking_trial(self, trial_id: int) -> None:
        # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
        import sqlalchemy

        session = self.scoped_session()
        try:
            session.execute(
                sqlalchemy.text("UPDATE trials SET state = state WHERE trial_id = :id"),
                {"id": trial_id},
            )
        except BaseException:
            session.rollback()
            session.close()
            raise

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        self._locking_trial(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._locking_trial(trial_id)
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._locking_trial(trial_id)
        super().set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._locking_trial(trial_id)
        super().set_trial_system_attr(trial_id, key, value)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        stale = super()._get_stale_trial_ids(study_id)
        assert self.heartbeat_interval is not None
        grace = self.grace_period or 2 * self.heartbeat_interval
        trial = models.TrialModel
        started: Any = getattr(trial, "_datetime_start_utc", None)  # newer Optuna stores UTC
        if started is None:  # older: the client's local clock
            started, deadline = trial.datetime_start, datetime.now() - timedelta(seconds=grace)
        else:
            now = datetime.now(UTC).replace(tzinfo=None)
            deadline = now - timedelta(seconds=grace)
        with _create_scoped_session(self.scoped_session, True) as session:
            never_beaten = (
                session.query(trial.trial_id)
                .filter(trial.study_id == study_id)
                .filter(trial.state == TrialState.RUNNING)
                .filter(~trial.heartbeats.any())
                .filter(started < deadline)
                .all()
            )
        return stale + [row[0] for row in never_beaten]
