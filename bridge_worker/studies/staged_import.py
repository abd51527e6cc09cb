"""``import`` that never destroys a study: stage, verify, then swap; recover what a crash left.

Optuna cannot rename a study, and deleting the old study before writing the new one (as a naive
overwrite does) leaves the name empty, or holding half a study, if the storage fails or the worker
dies meanwhile. Here an import goes through four phases:

1. **stage**: the new study is written in full under a private name (``optuna-bridge:staging:``
   + a random token) whose system attr ``optuna_bridge:import`` (the *recovery record*) says which
   name it is for, which study it replaces (that study's identity token), which worker writes it
   and its state, ``writing``;
2. **verify**: the staged study is read back (trial count, stored configuration);
3. **commit**: the record's state becomes ``ready`` (``copying`` once a copy has begun).
   Before this write a failure removes the staging study and the name still holds the old
   study, untouched; after it, the import is decided and will be completed;
4. **swap**: the old study (only the one checked: same identity token) is deleted and the staged
   one takes the name. On RDB storages (SQLite, PostgreSQL, MySQL) this is one transaction that
   deletes the old study and renames the staged one: readers see the old study or the new one,
   never neither. In memory it is a rename under the storage's lock. Journal storages have no
   rename: the old study is deleted, the staged one is copied under the name (marked by the
   attr ``optuna_bridge:copy_of`` until complete, and refused to readers while marked), then the
   staging study is deleted; while this copy runs, readers get ``study_not_found``.

A worker that finds recovery records of a dead writer (its own earlier life after kill -9, or
another worker's) completes them when it opens the storage and whenever a swap of its own failed:
``writing`` stages are deleted (roll back), ``ready`` stages are swapped in (roll forward), and a
half-made copy is made again. A writer counts as dead when it ran on this host and its process
(pid and start time) is gone, or, on another host, when it has not renewed its record for
:data:`LEASE_S` seconds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import structlog
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from bridge_worker.storage.backend import StagedSwap, opened_by
from bridge_worker.storage.identity import (
    IDENTITY_ATTR,
    Identity,
    delete_if_identical,
    new_token,
    read_identity,
)
from bridge_worker.storage.writers import STAGING_PREFIX, writer_alive, writer_record

RECORD_ATTR = "optuna_bridge:import"
"""System attr of a staging study: its recovery record."""
COPY_ATTR = "optuna_bridge:copy_of"
"""System attr of a study being copied from a staging study (journal storages); null when done."""
RESERVED_ATTRS = (RECORD_ATTR, COPY_ATTR, IDENTITY_ATTR)
"""System attrs that belong to one stored study and are never exported or imported."""

CHUNK = 200
"""Trials written between two renewals of the recovery record."""
IN_PROCESS = threading.RLock()
"""Held by every import and every recovery in this process, so they take turns. A record names
its writer's process, and :func:`~bridge_worker.storage.writers.writer_alive` takes this very
process for a writer not at work; two recoveries running at once here (two registries, or a frame
and a thread) would each delete the other's half-made copy as a dead writer's."""

_log = structlog.get_logger("bridge_worker.studies.staged_import")


class ImportConflict(Exception):
    """The name was taken by another study (another worker) while the import was staged."""


class SwapPending(Exception):
    """The import is committed (a complete staged copy exists) but the swap failed; recovery
    completes it at the worker's next frame or next start. ``__cause__`` is the storage's error."""


@dataclass(frozen=True, slots=True)
class StagedStudy:
    """Everything written into a new study: directions, attrs (the stored configuration and
    identity token among the system attrs) and trials."""

    directions: Sequence[str]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    trials: Sequence[FrozenTrial]


def import_staged(
    storage: BaseStorage,
    name: str,
    new: StagedStudy,
    replaces: Identity | None,
    stop: Callable[[], None] | None = None,
) -> None:
    """Write ``new`` under ``name``, replacing the study ``replaces`` (None: the name is free).
    ``stop`` runs before each trial is staged and may raise (a stop signal): the staging study is
    then deleted and nothing changed, so a long import never holds up the worker's exit.

    Raises the storage's error if staging fails (nothing changed), :class:`ImportConflict` if the
    name now means another study than ``replaces`` (nothing changed), or the storage's error if
    the swap fails after the commit point (the worker completes it later: see the module doc).
    """
    with IN_PROCESS:
        _import_staged(storage, name, new, replaces, stop)


def _import_staged(
    storage: BaseStorage,
    name: str,
    new: StagedStudy,
    replaces: Identity | None,
    stop: Callable[[], None] | None,
) -> None:
    record: dict[str, Any] = {
        "target": name,
        "state": "writing",
        "replaces": None if replaces is None else replaces.token,
        "token": new.system_attrs[IDENTITY_ATTR],
        "owner": writer_record(),
    }
    staging_name = STAGING_PREFIX + new_token()
    staging_id = storage.create_new_study(
        [optuna.study.StudyDirection[d.upper()] for d in new.directions], staging_name
    )
    try:
        storage.set_study_system_attr(staging_id, RECORD_ATTR, record)
        _write_contents(storage, staging_id, new, lambda: _renew(storage, staging_id, record), stop)
        _verify(storage, staging_id, new)
        record["state"] = "ready"
        storage.set_study_system_attr(staging_id, RECORD_ATTR, record)
    except BaseException:
        with contextlib.suppress(Exception):
            storage.delete_study(staging_id)
        raise
    try:
        _swap(storage, staging_id, staging_name, record, foreground=True)
    except ImportConflict:
        raise
    except Exception as exc:
        raise SwapPending(str(exc)) from exc


def recover(storage: BaseStorage) -> int:
    """Complete or roll back every import whose writer is dead; returns how many."""
    with IN_PROCESS:
        return _recover(storage)


def _recover(storage: BaseStorage) -> int:
    done = 0
    for frozen in storage.get_all_studies():
        record = frozen.system_attrs.get(RECORD_ATTR)
        if not frozen.study_name.startswith(STAGING_PREFIX) or not isinstance(record, dict):
            continue
        if writer_alive(record.get("owner")):
            continue
        try:
            if record.get("state") in ("ready", "copying"):
                _swap(storage, frozen._study_id, frozen.study_name, record, foreground=False)
                _log.warning("import_completed", study=record.get("target"))
            else:
                storage.delete_study(frozen._study_id)
                _log.warning("import_rolled_back", study=record.get("target"))
        except KeyError:  # another worker recovered it first
            continue
        done += 1
    return done


def import_committed(storage: BaseStorage, name: str) -> bool:
    """Whether an import into ``name`` is committed and not yet complete (a staged study marked
    ``ready`` or ``copying`` for it): the name is about to hold the imported study."""
    for frozen in storage.get_all_studies():
        record = frozen.system_attrs.get(RECORD_ATTR)
        if (
            frozen.study_name.startswith(STAGING_PREFIX)
            and isinstance(record, dict)
            and record.get("target") == name
            and record.get("state") in ("ready", "copying")
        ):
            return True
    return False


def being_copied(system_attrs: dict[str, Any]) -> bool:
    """Whether a study is a copy still being made (readers must not be served it)."""
    return system_attrs.get(COPY_ATTR) is not None


# ---- phases -----------------------------------------------------------------------------------


def _write_contents(
    storage: BaseStorage,
    study_id: int,
    new: StagedStudy,
    renew: Callable[[], None],
    stop: Callable[[], None] | None = None,
) -> None:
    for key, value in new.user_attrs.items():
        storage.set_study_user_attr(study_id, key, value)
    for key, value in new.system_attrs.items():
        storage.set_study_system_attr(study_id, key, value)
    for start in range(0, len(new.trials), CHUNK):
        for trial in new.trials[start : start + CHUNK]:
            if stop is not None:
                stop()
            storage.create_new_trial(study_id, template_trial=trial)
        renew()


def _verify(storage: BaseStorage, study_id: int, new: StagedStudy) -> None:
    stored = storage.get_all_trials(study_id, deepcopy=False)
    attrs = storage.get_study_system_attrs(study_id)
    if len(stored) != len(new.trials) or [t.number for t in stored] != list(range(len(stored))):
        raise optuna.exceptions.StorageInternalError(
            f"staged import holds {len(stored)} trials, expected {len(new.trials)}"
        )
    if attrs.get(IDENTITY_ATTR) != new.system_attrs[IDENTITY_ATTR]:
        raise optuna.exceptions.StorageInternalError("staged import lost its stored settings")


def _swap(
    storage: BaseStorage,
    staging_id: int,
    staging_name: str,
    record: dict[str, Any],
    *,
    foreground: bool,
) -> None:
    """Put the staged study under its target name, deleting the study it replaces.

    Idempotent: a swap interrupted anywhere is completed by running it again. When the name
    holds a study that is neither the replaced one nor the new one (created by another worker
    after the import was checked), nothing is overwritten: the staged study is dropped and the
    foreground import fails with :class:`ImportConflict`.
    """
    target = record["target"]
    current = read_identity(storage, target)
    if current is not None and not _replaces_or_is_new(storage, current, record, staging_name):
        storage.delete_study(staging_id)
        if foreground:
            raise ImportConflict(target)
        _log.warning("import_abandoned", study=target, reason="the name holds another study")
        return
    swap = StagedSwap(staging_id, staging_name, target, current, record["replaces"], RECORD_ATTR)
    swapped = opened_by(storage).swap_staged(storage, swap)
    if not swapped:
        _swap_by_copy(storage, staging_id, staging_name, target, record, current)


def _swap_by_copy(
    storage: BaseStorage,
    staging_id: int,
    staging_name: str,
    target: str,
    record: dict[str, Any],
    current: Identity | None,
) -> None:
    if current is not None:
        copy_state = storage.get_study_system_attrs(current.study_id).get(COPY_ATTR)
        if current.token == record["token"] and copy_state is None:  # copied completely
            storage.delete_study(staging_id)
            return
        if isinstance(copy_state, dict) and writer_alive(copy_state.get("owner")):
            return  # another worker is making the copy
        delete_if_identical(storage, current)  # the replaced study, or a copy begun and cut
    staged = StagedStudy(
        directions=[d.name.lower() for d in storage.get_study_directions(staging_id)],
        user_attrs=storage.get_study_user_attrs(staging_id),
        system_attrs={
            k: v
            for k, v in storage.get_study_system_attrs(staging_id).items()
            if k not in (RECORD_ATTR, COPY_ATTR)
        },
        trials=storage.get_all_trials(staging_id, deepcopy=False),
    )
    if record.get("state") != "copying":  # a bare study under the name is ours from now on
        record = {**record, "state": "copying"}
        storage.set_study_system_attr(staging_id, RECORD_ATTR, record)
    try:
        copy_id = storage.create_new_study(
            [optuna.study.StudyDirection[d.upper()] for d in staged.directions], target
        )
    except optuna.exceptions.DuplicatedStudyError:
        return  # another worker is making the copy; its record says so, and it will finish
    copy_state = {"staging": staging_name, "owner": writer_record()}
    storage.set_study_system_attr(copy_id, COPY_ATTR, copy_state)
    _write_contents(storage, copy_id, staged, lambda: _renew_copy(storage, copy_id, copy_state))
    _verify(storage, copy_id, staged)
    storage.set_study_system_attr(copy_id, COPY_ATTR, None)
    storage.delete_study(staging_id)


def _replaces_or_is_new(
    storage: BaseStorage, current: Identity, record: dict[str, Any], staging_name: str
) -> bool:
    """Whether the study under the target name is one this import may replace or complete: the
    study it replaces, the new one, or (while copying) a copy of it begun and cut short."""
    replaces = record["replaces"]
    if current.token == record["token"] or (replaces is not None and current.token == replaces):
        return True
    if record.get("state") != "copying":
        return False
    copy_state = storage.get_study_system_attrs(current.study_id).get(COPY_ATTR)
    if isinstance(copy_state, dict):
        return bool(copy_state.get("staging") == staging_name)
    return is_bare(storage, current.study_id)


def is_bare(storage: BaseStorage, study_id: int) -> bool:
    """A study with nothing in it: what ``create_new_study`` makes before any attr is written."""
    return not (
        storage.get_study_system_attrs(study_id)
        or storage.get_study_user_attrs(study_id)
        or storage.get_n_trials(study_id)
    )


# ---- who is writing ---------------------------------------------------------------------------


def _renew(storage: BaseStorage, study_id: int, record: dict[str, Any]) -> None:
    record["owner"] = writer_record()
    storage.set_study_system_attr(study_id, RECORD_ATTR, record)


def _renew_copy(storage: BaseStorage, study_id: int, state: dict[str, Any]) -> None:
    state["owner"] = writer_record()
    storage.set_study_system_attr(study_id, COPY_ATTR, state)
