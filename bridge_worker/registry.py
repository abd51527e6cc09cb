"""The study registry: every study this worker serves, keyed by name.

It is the only mutable state in the worker. It owns the Optuna storage, caches one
``optuna.Study`` per name (building a Study and its sampler per frame would cost more than the
frame), and keeps each study's :class:`~bridge_worker.schema.StudyConfig` beside it. The config
is also written into the storage as a study system attr, so a worker that finds a study in a
durable storage (after a restart, or created by another worker) rebuilds the same sampler, pruner
and search space.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from bridge_worker.convert import metric_names, stored_metric_names
from bridge_worker.errors import BridgeError, ErrorKind, study_not_found
from bridge_worker.heartbeat import HeartbeatKeeper
from bridge_worker.leases import LeaseKeeper
from bridge_worker.limits import Limits
from bridge_worker.samplers import build_pruner, build_study_sampler, check_sampler_fits
from bridge_worker.schema import Direction, StudyConfig, UserAttrs
from bridge_worker.space import to_distributions
from bridge_worker.storage import StorageHandle, StorageOptions

CONFIG_ATTR = "optuna_bridge:config"
"""Study system attr holding the study's :class:`StudyConfig` as JSON."""


@dataclass(slots=True)
class StudyEntry:
    """A served study: the Optuna study, its config and its search space as distributions."""

    name: str
    study: optuna.Study
    config: StudyConfig
    distributions: dict[str, BaseDistribution]

    @property
    def directions(self) -> list[Direction]:
        return [direction_name(d) for d in self.study.directions]


def direction_name(direction: StudyDirection) -> Direction:
    return "maximize" if direction == StudyDirection.MAXIMIZE else "minimize"


@dataclass(frozen=True, slots=True)
class StudyStatus:
    name: str
    directions: list[Direction]
    n_trials: int
    n_running: int
    metric_names: list[str] | None = None


class StudyRegistry:
    def __init__(
        self, storage: StorageHandle | StorageOptions | None = None, limits: Limits | None = None
    ) -> None:
        if not isinstance(storage, StorageHandle):
            storage = StorageHandle(storage or StorageOptions())
        self._handle = storage
        self.limits = limits or Limits()
        self._entries: dict[str, StudyEntry] = {}
        self._keeper: HeartbeatKeeper | None = None
        self.leases = LeaseKeeper(lambda: self.storage, shared=storage.kind != "memory")
        """Fails trials whose lease ended in every study this worker serves."""

    @property
    def storage(self) -> BaseStorage:
        """The Optuna storage (opened on first use; ``storage_error`` while it cannot be)."""
        return self._handle.get()

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

    def trial_asked(self, trial_id: int) -> None:
        if self._handle.options.heartbeat is None:
            return
        if self._keeper is None:
            target = self._handle.heartbeat
            if target is None:
                return
            self._keeper = HeartbeatKeeper(target, self._handle.options.heartbeat)
        self._keeper.track(trial_id)

    def trial_told(self, trial_id: int) -> None:
        if self._keeper is not None:
            self._keeper.untrack(trial_id)

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
        self.limits.check("max_name_length", "length of the study name", len(name))
        distributions = to_distributions(
            config.search_space, "$.params.search_space", self.limits
        )
        check_sampler_fits(config.sampler, len(directions))
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
        study._storage.set_study_system_attr(
            study._study_id, CONFIG_ATTR, msgspec.to_builtins(config)
        )
        for key, value in user_attrs.items():
            study.set_user_attr(key, value)
        entry = StudyEntry(name, study, config, distributions)
        self._entries[name] = entry
        self.leases.watch(study._study_id)
        return entry, True

    def check_room_for_a_study(self) -> None:
        self.limits.check("max_studies", "studies", len(self.storage.get_all_studies()) + 1)

    def adopt(self, study: optuna.Study, config: StudyConfig) -> StudyEntry:
        """Serve a study just written into the storage by other means (``import``)."""
        study._storage.set_study_system_attr(
            study._study_id, CONFIG_ATTR, msgspec.to_builtins(config)
        )
        name = study.study_name
        entry = StudyEntry(
            name, study, config, to_distributions(config.search_space, "$.search_space")
        )
        self._entries[name] = entry
        self.leases.watch(study._study_id, at=time.time())  # its trials may hold leases
        return entry

    def forget(self, name: str) -> None:
        """Drop a cached study (after it was deleted from the storage)."""
        entry = self._entries.pop(name, None)
        if entry is not None:
            self.leases.forget(entry.study._study_id)

    def exists(self, name: str) -> bool:
        try:
            self.storage.get_study_id_from_name(name)
        except KeyError:
            return False
        return True

    def get(self, name: str) -> StudyEntry:
        """The study named ``name``, from the cache or else from the storage."""
        entry = self._entries.get(name)
        if entry is None:
            entry = self._load(name)
            self._entries[name] = entry
            self.leases.watch(entry.study._study_id)
        return entry

    def delete(self, name: str) -> None:
        entry = self.get(name)
        self.forget(name)
        try:
            self.storage.delete_study(entry.study._study_id)
        except KeyError:  # deleted meanwhile by another worker on the same storage
            raise study_not_found(name) from None

    def summary(self, entry: StudyEntry) -> StudyStatus:
        study_id = entry.study._study_id
        names = stored_metric_names(self.storage, study_id)
        return self._summary(study_id, entry.name, entry.directions, names)

    def summaries(self) -> list[StudyStatus]:
        """Every study in the storage, including ones this worker has not served yet (a durable
        storage holds the studies of earlier and of other workers)."""
        return [
            self._summary(
                frozen._study_id,
                frozen.study_name,
                [direction_name(d) for d in frozen.directions],
                metric_names(frozen.system_attrs),
            )
            for frozen in self.storage.get_all_studies()
        ]

    def _summary(
        self, study_id: int, name: str, directions: list[Direction],
        names: list[str] | None = None,
    ) -> StudyStatus:
        storage = self.storage
        running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return StudyStatus(name, directions, storage.get_n_trials(study_id), len(running), names)

    def _get_or_adopt_config(self, name: str, config: StudyConfig) -> StudyEntry:
        """``create`` with ``load_if_exists`` of a study that exists: the stored settings win.

        A study without stored settings (made by plain Optuna, or being created this very moment
        by another worker that has not written them yet) takes the request's settings, so
        workers racing to create one shared study all serve the same search space.
        """
        cached = self._entries.get(name)
        if cached is not None:
            return cached
        entry = self._load(name, fallback=config)
        self._entries[name] = entry
        self.leases.watch(entry.study._study_id)
        return entry

    def _load(self, name: str, fallback: StudyConfig | None = None) -> StudyEntry:
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            raise study_not_found(name) from None
        stored = self.storage.get_study_system_attrs(study_id).get(CONFIG_ATTR)
        if stored is not None:
            config = msgspec.convert(stored, StudyConfig)
        elif fallback is not None:
            config = fallback
            self.storage.set_study_system_attr(study_id, CONFIG_ATTR, msgspec.to_builtins(config))
        else:
            config = StudyConfig()
        study = optuna.load_study(
            study_name=name,
            storage=self.storage,
            sampler=build_study_sampler(config.sampler),
            pruner=build_pruner(config.pruner),
        )
        distributions = to_distributions(config.search_space, "$.search_space")
        return StudyEntry(name, study, config, distributions)
