"""The study registry: every study this worker serves, keyed by name.

It is the only mutable state in the worker. It owns the Optuna storage, caches one
``optuna.Study`` per name (building a Study and its sampler per frame would cost more than the
frame), and keeps each study's :class:`~bridge_worker.wire.schema.StudyConfig` beside it. The config
is also written into the storage as a study system attr, so a worker that finds a study in a
durable storage (after a restart, or created by another worker) rebuilds the same sampler, pruner
and search space.

It is the one place a study comes to exist: ``create`` (a new study), ``_load`` (one the storage
holds) and ``restore`` (one read from a snapshot) all end here, and the stored configuration is
made by one private function (``_settings``). ``snapshot_body`` and ``restore`` are the storage
half of ``export`` and ``import``; :mod:`bridge_worker.studies.snapshot` is only the format.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import msgspec
import optuna
import structlog
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.storage.backend import is_shared
from bridge_worker.storage.handle import StorageHandle
from bridge_worker.storage.identity import (
    IDENTITY_ATTR,
    Identity,
    new_token,
    read_identity,
)
from bridge_worker.storage.options import StorageOptions
from bridge_worker.storage.writers import STAGING_PREFIX
from bridge_worker.studies import ask_tell
from bridge_worker.studies.artifacts import ArtifactKeeper
from bridge_worker.studies.asked_trials import AskedTrials, replaced
from bridge_worker.studies.client_ids import ClientTrials
from bridge_worker.studies.convert import metric_names, stored_metric_names
from bridge_worker.studies.heartbeat import HeartbeatKeeper
from bridge_worker.studies.leases import LeaseKeeper
from bridge_worker.studies.resolved import is_resolved, resolve_config
from bridge_worker.studies.samplers import (
    build_pruner,
    build_sampler,
    build_study_sampler,
    check_sampler_cost,
    check_sampler_fits,
)
from bridge_worker.studies.snapshot import snapshot_trial
from bridge_worker.studies.space import to_distributions
from bridge_worker.studies.staged_import import (
    RESERVED_ATTRS,
    ImportConflict,
    StagedStudy,
    SwapPending,
    being_copied,
    import_committed,
    import_staged,
    is_bare,
    recover,
)
from bridge_worker.studies.stopping import stopped_study
from bridge_worker.studies.study import StudyEntry, direction_name
from bridge_worker.studies.trial_counts import count_all, count_one
from bridge_worker.studies.trial_guard import check_sampler_space
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params, study_not_found
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.schema import (
    AskParams,
    AskResult,
    Direction,
    RenewParams,
    RenewResult,
    SnapshotBody,
    StudyConfig,
    StudySummary,
    TellParams,
    TellResult,
    UserAttrs,
)
from bridge_worker.wire.storage_bounds import check_name_text

_log = structlog.get_logger("bridge_worker.studies.registry")

CONFIG_ATTR = "optuna_bridge:config"
"""Study system attr holding the study's :class:`StudyConfig` as JSON."""
_NOT_CARRIED = frozenset((CONFIG_ATTR, *RESERVED_ATTRS))
"""System attrs a snapshot never carries: the stored config (a snapshot has it typed, as
``config``) and the stored study's own identity and import bookkeeping."""


class StudyRegistry:
    def __init__(
        self, storage: StorageHandle | StorageOptions | None = None, limits: Limits | None = None
    ) -> None:
        if not isinstance(storage, StorageHandle):
            storage = StorageHandle(storage or StorageOptions())
        self._handle = storage
        self.limits = limits or Limits()
        self.snapshot_key: bytes | None = None
        """The operator's key (``--snapshot-key``): exports are signed, imports must be."""
        self._entries: dict[str, StudyEntry] = {}
        self._keeper: HeartbeatKeeper | None = None
        self._recovery_due = True
        self.should_stop: Callable[[], bool] = lambda: False
        """Whether a stop signal came (set by :func:`~bridge_worker.wiring.build_endpoint`):
        long frames check it between their steps (:meth:`stop_point`)."""
        self.max_step = storage.backend.max_step
        """The largest intermediate-value step the storage holds."""
        self.leases = LeaseKeeper(self._handle.get, shared=storage.backend.shared)
        """Fails trials whose lease ended in every study this worker serves. Its thread reaches
        the storage without :attr:`storage`'s import recovery: recovery runs in frames only."""
        self.asked = AskedTrials()
        """The study identity each trial asked here was handed out under."""
        self.clients = ClientTrials()
        """The pending trials of each asking client (``ask`` ``client``)."""
        self.artifacts = ArtifactKeeper()
        """Artifact uploads and the store (``--artifacts DIR``; not configured by default)."""

    @property
    def storage(self) -> BaseStorage:
        """The Optuna storage (opened on first use; ``storage_error`` while it cannot be).

        The first time it is reached, and again after an import whose swap failed, imports left
        unfinished by dead workers are completed or rolled back (:mod:`staged_import`)."""
        storage = self._handle.get()
        if self._recovery_due:
            self._recovery_due = False
            try:
                recover(storage)
                # deletes a killed worker left unfinished (RDB storages delete in steps)
                self._handle.backend.purge_abandoned(storage, self.should_stop)
            except Exception as exc:  # the frame itself will meet the storage's trouble
                self._recovery_due = True
                _log.warning("import_recovery_failed", error=f"{type(exc).__name__}: {exc}")
        return storage

    def stop_point(self, outcome: str, **data: Any) -> None:
        """Between two steps of a long frame: ``worker_stopping`` once a stop signal came, so
        SIGTERM is honoured within about a step, whatever the frame; ``outcome`` says what the
        frame left behind (nothing, or what data lists)."""
        if self.should_stop():
            raise BridgeError(
                ErrorKind.WORKER_STOPPING, f"the worker is stopping (signal): {outcome}", **data
            )

    def open(self) -> BaseStorage:
        """Open the storage now (at start-up), completing imports dead workers left unfinished."""
        return self.storage

    def close(self) -> None:
        self.leases.stop()
        if self._keeper is not None:
            self._keeper.stop()

    # ---- heartbeats of running trials (operator's --heartbeat) ----------------------------

    def fail_stale_trials(self, entry: StudyEntry) -> None:
        """Fail the running trials of dead workers (and re-enqueue them with --retry-failed)."""
        if self._handle.options.heartbeat is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(entry.study)

    def trial_asked(self, study_id: int, trial_id: int) -> None:
        if self._handle.options.heartbeat is None:
            return
        if self._keeper is None:
            target = self._handle.heartbeat
            if target is None:
                return
            self._keeper = HeartbeatKeeper(target, self._handle.options.heartbeat)
        self._keeper.track(study_id, trial_id)

    def trial_told(self, trial_id: int) -> None:
        if self._keeper is not None:
            self._keeper.untrack(trial_id)

    # ---- trials -----------------------------------------------------------------------------

    def ask(self, params: AskParams) -> AskResult:
        """``ask`` (:func:`bridge_worker.studies.ask_tell.ask`): trials created, tracked by the
        heartbeat and the lease sweep, and recorded as asked here."""
        return ask_tell.ask(self, params)

    def tell(self, params: TellParams) -> TellResult:
        """``tell`` (:func:`bridge_worker.studies.ask_tell.tell`): the outcome stored once, the
        trial no longer tracked."""
        return ask_tell.tell(self, params)

    def renew(self, params: RenewParams) -> RenewResult:
        """``renew``: a running trial's lease extended, the sweep told its new end."""
        return ask_tell.renew(self, params)

    def reading(self, name: str) -> StudyEntry:
        """The study the name means, about to be read: trials whose lease ended are failed
        first, so a reader never sees one running."""
        entry = self.get(name)
        self.leases.sweep_before_reading(entry.study_id)
        return entry

    # ---- studies ----------------------------------------------------------------------------

    def create(
        self,
        name: str,
        directions: Sequence[Direction],
        config: StudyConfig,
        user_attrs: UserAttrs,
        load_if_exists: bool,
    ) -> tuple[StudyEntry, bool]:
        """Create a study; with ``load_if_exists`` an existing one is returned as stored
        (its own directions and config win). Returns the entry and whether it was created."""
        check_name(name, "$.params.study", self.limits)
        distributions = to_distributions(config.search_space, "$.params.search_space", self.limits)
        check_sampler_fits(config.sampler, len(directions))
        check_sampler_space(config.sampler, distributions)
        check_sampler_cost(config.sampler, distributions, self.limits, "$.params.search_space")
        self.limits.check_user_attrs(user_attrs, "$.params.user_attrs")
        config = _resolved(config, len(directions))
        sampler = build_study_sampler(config.sampler)
        pruner = build_pruner(config.pruner)
        if not load_if_exists or not self.exists(name):
            self.check_room_for_a_study()
        try:
            study = optuna.create_study(
                storage=self.storage,
                study_name=name,
                directions=list(directions),
                sampler=sampler,
                pruner=pruner,
            )
        except DuplicatedStudyError:
            if load_if_exists:
                return self._get_or_adopt_config(name, config), False
            raise BridgeError(
                ErrorKind.STUDY_EXISTS, f"a study named {name!r} already exists", study=name
            ) from None
        entry = StudyEntry(name, study, config, distributions, None)
        entry.token = _stamp(self.storage, entry.study_id, config)
        entry.set_user_attrs(user_attrs)
        self._entries[name] = entry
        self.leases.watch(entry.study_id)
        return entry, True

    def check_room_for_a_study(self) -> None:
        self.limits.check("max_studies", "studies", len(self.storage.get_all_studies()) + 1)

    def restore(
        self, name: str, body: SnapshotBody, trials: list[FrozenTrial], overwrite: bool
    ) -> StudyEntry:
        """Write a study read from a snapshot
        (:func:`~bridge_worker.studies.snapshot.read_snapshot`) under ``name``. An existing study of
        that name is replaced only with ``overwrite``, and then never destructively: the name is
        never left empty on a failure (:mod:`staged_import`)."""
        config = body.config
        check_sampler_fits(config.sampler, len(body.directions))
        build_study_sampler(config.sampler)
        build_pruner(config.pruner)
        if not is_resolved(config):
            config = _resolved(config, len(body.directions))
            _log.info(
                "study_config_resolved", study=name, source="snapshot", optuna=config.optuna_version
            )
        for index, trial in enumerate(trials):
            self.limits.check("max_params", f"parameters of trial {index}", len(trial.params))
        check_name(name, "$.params.study", self.limits)
        replaces = None
        if self.exists(name):
            if not overwrite:
                raise BridgeError(
                    ErrorKind.STUDY_EXISTS,
                    f"a study named {name!r} already exists (import with overwrite to replace it)",
                    study=name,
                )
            replaces = self.get(name).identity
        else:
            self.check_room_for_a_study()
        kept = {k: v for k, v in body.system_attrs.items() if k not in _NOT_CARRIED}
        new = StagedStudy(
            directions=list(body.directions),
            user_attrs=dict(body.user_attrs),
            system_attrs={**kept, **_settings(config, new_token())},
            trials=trials,
        )
        storage = self.storage
        try:
            import_staged(
                storage,
                name,
                new,
                replaces,
                lambda: self.stop_point(f"nothing was imported: study {name!r} is as it was"),
            )
        except ImportConflict:
            raise BridgeError(
                ErrorKind.STUDY_EXISTS,
                f"study {name!r} was replaced by another worker during the import; "
                "nothing was imported",
                study=name,
            ) from None
        except SwapPending as pending:
            self._recovery_due = True  # completed at the next frame, or by the next worker
            raise BridgeError(
                ErrorKind.STORAGE_ERROR,
                f"storage failure while swapping in the imported study {name!r}: {pending}; the "
                "import is committed and will be completed as soon as the storage works "
                "(at this worker's next frame or any worker's start)",
                study=name,
                committed=True,
                error=type(pending.__cause__).__name__,
            ) from pending
        finally:
            self.forget(name)
        entry = self.get(name)
        self.leases.watch(entry.study_id, at=time.time())  # its trials may hold leases
        return entry

    def snapshot_body(self, entry: StudyEntry) -> SnapshotBody:
        """What a snapshot of the study holds
        (:func:`~bridge_worker.studies.snapshot.encode_snapshot`): its config typed, and none of the
        system attrs that are this stored study's own (its stored config, identity token, import
        bookkeeping)."""
        storage = self.storage
        system_attrs = storage.get_study_system_attrs(entry.study_id)
        return SnapshotBody(
            study=entry.name,
            directions=entry.directions,
            config=entry.config,
            user_attrs=entry.user_attrs(),
            system_attrs={k: v for k, v in system_attrs.items() if k not in _NOT_CARRIED},
            trials=[snapshot_trial(t) for t in entry.study.get_trials(deepcopy=False)],
        )

    def forget(self, name: str) -> None:
        """Drop a cached study (after it was deleted from the storage)."""
        entry = self._entries.pop(name, None)
        if entry is not None:
            self.leases.forget(entry.study_id)
            self.clients.forget(entry.study_id)

    def exists(self, name: str) -> bool:
        return read_identity(self.storage, name) is not None

    def get(self, name: str) -> StudyEntry:
        """The study the name means now: the cached entry after checking (one indexed read)
        that the storage still gives the name the same identity, else loaded afresh.

        Another worker on the same storage may have deleted the study (``study_not_found``) or
        replaced it by another under the same name, maybe with the same storage id: then the
        new study is loaded with its own directions, sampler and search space, and the stale
        entry is never used again.
        """
        entry = self._entries.get(name)
        if entry is None:
            if "\x00" in name:  # no storage holds such a name; PostgreSQL cannot look it up
                raise study_not_found(name)
            entry = self._load(name)
        else:
            storage = self.storage
            if not is_shared(storage):
                return entry
            identity = read_identity(storage, name)
            if identity is not None and identity == entry.identity:
                return entry
            self.forget(name)
            if identity is None and not self._import_landed(name):
                raise study_not_found(name)
            entry = self._load(name, identity=identity)
        self._entries[name] = entry
        self.leases.watch(entry.study_id)
        return entry

    def replaced(self, name: str) -> bool:
        """Whether the study cached under ``name`` is no longer the one the name means (deleted
        or replaced since it was cached); the cached entry is dropped then."""
        entry = self._entries.get(name)
        if entry is None or read_identity(self.storage, name) == entry.identity:
            return False
        self.forget(name)
        return True

    def trial_study(self, name: str, number: int) -> StudyEntry:
        """The study a request about one trial (tell, renew, report, set_attrs) means:
        ``study_not_found`` with ``replaced`` when the trial was asked here from a study that
        has since been deleted or replaced (:mod:`bridge_worker.studies.asked_trials`)."""
        try:
            entry = self.get(name)
        except BridgeError as error:
            if error.kind is ErrorKind.STUDY_NOT_FOUND and self.asked.knows(name, number):
                raise replaced(name, number) from None
            raise
        self.asked.check(entry, number)
        return entry

    def delete(self, name: str) -> None:
        """Delete the study the name means now, and only that one: if another worker replaces
        it between the check and the delete, nothing is deleted (``study_not_found``)."""
        entry = self.get(name)
        self.forget(name)
        storage = self.storage
        # RDB storages: hidden at once, then removed in short transactions
        deleted = self._handle.backend.delete(storage, entry.identity, self.should_stop)
        if not deleted:
            raise BridgeError(
                ErrorKind.STUDY_NOT_FOUND,
                f"study {name!r} was deleted or replaced by another worker while being deleted; "
                "nothing was deleted",
                study=name,
            )

    def summary(self, entry: StudyEntry) -> StudySummary:
        study_id = entry.study_id
        names = stored_metric_names(self.storage, study_id)
        return self._summary(study_id, entry.name, entry.directions, names, entry.config)

    def reconfigure(self, entry: StudyEntry, config: StudyConfig) -> None:
        """Store a changed configuration of a served study (``set_stop``); other workers serving
        it read it when they next load the study."""
        self.storage.set_study_system_attr(entry.study_id, CONFIG_ATTR, msgspec.to_builtins(config))
        entry.config = config

    def summaries(self) -> list[StudySummary]:
        """Every study in the storage, including ones this worker has not served yet (a durable
        storage holds the studies of earlier and of other workers); never an import's staging
        study or a copy still being made."""
        storage = self.storage
        shown = [
            frozen
            for frozen in storage.get_all_studies()
            if not frozen.study_name.startswith(STAGING_PREFIX)
            and not being_copied(frozen.system_attrs)
        ]
        for frozen in shown:  # an ended lease is not counted running
            self.leases.sweep_before_reading(frozen._study_id)
        counts = count_all(storage, STAGING_PREFIX)  # one query on RDB storages
        summaries = []
        for frozen in shown:
            self.stop_point("list was not finished (nothing changed)")
            study_id = frozen._study_id
            if counts is not None and study_id not in counts:
                continue  # deleted (hidden, being removed) since it was listed
            n_trials, n_running = (
                counts.get(study_id, (0, 0)) if counts is not None else count_one(storage, study_id)
            )
            directions = [direction_name(d) for d in frozen.directions]
            config = _stored_config(frozen.system_attrs)
            stopped = (
                None
                if config is None
                else stopped_study(
                    config, directions, partial(storage.get_all_trials, study_id, deepcopy=False)
                )
            )
            summaries.append(
                StudySummary(
                    frozen.study_name,
                    directions,
                    n_trials,
                    n_running,
                    metric_names(frozen.system_attrs),
                    stopped,
                )
            )
        return summaries

    def _summary(
        self,
        study_id: int,
        name: str,
        directions: list[Direction],
        names: list[str] | None = None,
        config: StudyConfig | None = None,
    ) -> StudySummary:
        storage = self.storage
        self.leases.sweep_before_reading(study_id)  # a lease that ended is not counted running
        running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        stopped = (
            None
            if config is None
            else stopped_study(
                config, directions, lambda: storage.get_all_trials(study_id, deepcopy=False)
            )
        )
        return StudySummary(
            name, directions, storage.get_n_trials(study_id), len(running), names, stopped
        )

    def _get_or_adopt_config(self, name: str, config: StudyConfig) -> StudyEntry:
        """``create`` with ``load_if_exists`` of a study that exists: the stored settings win.

        A study without stored settings (made by plain Optuna, or being created this very moment
        by another worker that has not written them yet) takes the request's settings, so
        workers racing to create one shared study all serve the same search space.
        """
        if name in self._entries:
            return self.get(name)
        entry = self._load(name, fallback=config)
        self._entries[name] = entry
        self.leases.watch(entry.study_id)
        return entry

    def _import_landed(self, name: str) -> bool:
        """Readers see the old study or the imported one, never a gap: where an import's swap
        is not one transaction (journal storages delete the old study, then copy the new one
        in), a reader that finds the name empty or a copy in progress while an import into it
        is committed waits (up to IMPORT_WAIT_S) until the imported study is complete. True when
        it is; False when no import is under way (or it did not land in time)."""
        storage = self.storage
        deadline = time.monotonic() + IMPORT_WAIT_S
        try:
            recover(storage)  # an import whose writer died is completed now, not waited for
        except Exception as exc:  # the wait below meets the storage's trouble itself
            _log.warning("import_recovery_failed", error=f"{type(exc).__name__}: {exc}")
        if not import_committed(storage, name):
            identity = read_identity(storage, name)
            if identity is None:
                return False
            if not being_copied(storage.get_study_system_attrs(identity.study_id)):
                return True
        while time.monotonic() < deadline:
            time.sleep(0.02)
            identity = read_identity(storage, name)
            try:
                if identity is not None and not being_copied(
                    storage.get_study_system_attrs(identity.study_id)
                ):
                    return True
            except KeyError:
                continue
            if identity is None and not import_committed(storage, name):
                return False
        return False

    def _load(
        self, name: str, fallback: StudyConfig | None = None, identity: Identity | None = None
    ) -> StudyEntry:
        """Build the entry of the study named ``name`` from what the storage holds.

        A study without an identity token (made by an older version of this worker or by plain
        Optuna) is given one now: its first loader adopts it, unless it holds no attr yet. Two
        workers adopting at once both write a token and the later one wins; the other sees the
        mismatch at its next frame and reloads the same study, which costs one reload and
        nothing else.
        """
        storage = self.storage
        identity = identity or read_identity(storage, name)
        if name.startswith(STAGING_PREFIX):
            raise study_not_found(name)
        if identity is None:
            if self._import_landed(name):
                return self._load(name, fallback)
            raise study_not_found(name)
        try:
            stored = storage.get_study_system_attrs(identity.study_id)
        except KeyError:
            raise study_not_found(name) from None
        if being_copied(stored):
            if self._import_landed(name):
                return self._load(name, fallback)
            raise BridgeError(
                ErrorKind.STUDY_NOT_FOUND,
                f"study {name!r} is being replaced by an import; retry in a moment",
                study=name,
                importing=True,
            )
        token = stored.get(IDENTITY_ATTR)
        raw_config = stored.get(CONFIG_ATTR)
        if raw_config is not None:
            config = msgspec.convert(raw_config, StudyConfig)
            if not is_resolved(config):  # stored by a version before resolved options
                n_objectives = len(storage.get_study_directions(identity.study_id))
                config = _resolved(config, n_objectives)
                storage.set_study_system_attr(
                    identity.study_id, CONFIG_ATTR, msgspec.to_builtins(config)
                )
                _log.info(
                    "study_config_resolved",
                    study=name,
                    source="storage",
                    optuna=config.optuna_version,
                )
        else:
            config = fallback or StudyConfig()
        # A study that holds nothing at all is one whose creator (a create, an import's copy)
        # has not written its first attr yet: stamping it would overwrite what that writer is
        # about to write, and serving it now would serve the wrong settings. Its creator is
        # waited for; a study still empty then (its creator was killed, or plain Optuna made
        # it) is adopted by ``create`` with ``load_if_exists`` and otherwise served unstamped.
        holds_something = bool(stored) or not is_bare(storage, identity.study_id)
        if not holds_something:
            if _creator_wrote(storage, identity.study_id):
                return self._load(name, fallback)
            holds_something = fallback is not None  # no creator at work: create adopts it
        if holds_something and (not isinstance(token, str) or (raw_config is None and fallback)):
            token = _stamp(storage, identity.study_id, config, token)
        elif not isinstance(token, str):
            token = None
        study = optuna.Study(
            study_name=name,
            storage=storage,
            sampler=build_study_sampler(config.sampler),
            pruner=build_pruner(config.pruner),
        )
        if study._study_id != identity.study_id:  # replaced while we read it: read again
            return self._load(name, fallback)
        distributions = to_distributions(config.search_space, "$.search_space")
        return StudyEntry(name, study, config, distributions, token)


IMPORT_WAIT_S = 30.0
"""How long a reader waits for an import's copy to complete (journal storages) instead of
answering that the study is missing."""

CREATION_WAIT_S = 10.0
"""How long a worker waits for the creator of a study it finds empty to write its settings
(normally milliseconds: the creator writes them right after creating the study)."""


def _creator_wrote(storage: BaseStorage, study_id: int) -> bool:
    """Wait (up to CREATION_WAIT_S) until the study being created holds something (its stored
    settings) or is gone; False when it is still empty then (its creator died in between)."""
    deadline = time.monotonic() + CREATION_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            if not is_bare(storage, study_id):
                return True
        except KeyError:  # deleted meanwhile: load again, the name may mean another study
            return True
    return False


def _resolved(config: StudyConfig, n_objectives: int) -> StudyConfig:
    return resolve_config(config, n_objectives, build_sampler, build_pruner)


def _stored_config(system_attrs: dict[str, Any]) -> StudyConfig | None:
    """A study's stored configuration, None when it has none or one this version cannot read."""
    raw = system_attrs.get(CONFIG_ATTR)
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, StudyConfig)
    except msgspec.ValidationError:
        return None


def _stamp(
    storage: BaseStorage, study_id: int, config: StudyConfig, token: str | None = None
) -> str:
    """Write a study's stored configuration and identity token (a new one unless given), for
    ``create`` and for the adoption of an unstamped study by ``_load``."""
    settings = _settings(config, token if isinstance(token, str) else new_token())
    for key, value in settings.items():
        storage.set_study_system_attr(study_id, key, value)
    return str(settings[IDENTITY_ATTR])


def _settings(config: StudyConfig, token: str) -> dict[str, Any]:
    """The system attrs that make a study one this worker serves: its configuration (sampler,
    pruner, search space) and its identity token. The one place the stored configuration is
    made: ``create`` and ``_load`` write it through :func:`_stamp`, ``restore`` hands it to the
    staged copy so it arrives with the study in one swap."""
    return {CONFIG_ATTR: msgspec.to_builtins(config), IDENTITY_ATTR: token}


def check_name(name: str, field: str, limits: Limits) -> None:
    """A study name a parent may use: within --max-name-length, outside the staging prefix."""
    limits.check("max_name_length", "length of the study name", len(name))
    check_name_text(name, field, "a study name")
    if name.startswith(STAGING_PREFIX):
        raise invalid_params(field, f"study names starting with {STAGING_PREFIX!r} are reserved")
