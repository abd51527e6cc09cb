"""An imported study obeys the limits a created one does.

A snapshot is data from outside, like a frame, and its checksum proves nothing about who wrote it
(a parent, or anyone who can hand it one, can recompute it). Everything that ``create``, ``ask``,
``set_attrs`` and ``tell`` bound is therefore bounded here too, before anything is written: the
search space and the sampler's cost per ask (TPE candidates, BruteForce values, also over every
trial's own distributions, which BruteForce enumerates), categorical choices, user attrs (count
and size, the study's and every trial's), system attrs (the same bounds), and the sampler state a
snapshot may carry in system attrs: a QMC sample index beyond the trials the study ever had
would make every later ask fast-forward the sequence that far (a forged Halton index: 11.8 s and
+1.2 GiB per ask).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge_worker.studies.samplers import check_sampler_cost
from bridge_worker.studies.space import to_distributions
from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.schema import BruteForceSamplerSpec, SnapshotBody

QMC_INDEX_PREFIX = "qmc:"
"""Optuna's QMCSampler keeps its next sample's index in the study system attr ``qmc:<hash>``."""

_BODY = "$.params.snapshot.body"


def check_import_limits(body: SnapshotBody, limits: Limits) -> None:
    """``limit_exceeded`` (naming the limit and the field) or ``snapshot_invalid`` for a
    snapshot this worker would refuse to build with ``create`` and the other methods."""
    config = body.config
    space_field = f"{_BODY}.config.search_space"
    distributions = to_distributions(config.search_space, space_field, limits)
    check_sampler_cost(config.sampler, distributions, limits, space_field)
    limits.check_user_attrs(body.user_attrs, f"{_BODY}.user_attrs")
    _check_system_attrs(body.system_attrs, f"{_BODY}.system_attrs", limits)
    _check_qmc_indexes(body.system_attrs, len(body.trials))
    bruteforce = isinstance(config.sampler, BruteForceSamplerSpec)
    for index, trial in enumerate(body.trials):
        where = f"{_BODY}.trials[{index}]"
        trial_space = to_distributions(trial.distributions, f"{where}.distributions", limits)
        if bruteforce:
            check_sampler_cost(config.sampler, trial_space, limits, f"{where}.distributions")
        limits.check_user_attrs(trial.user_attrs, f"{where}.user_attrs")
        _check_system_attrs(trial.system_attrs, f"{where}.system_attrs", limits)


def _check_system_attrs(attrs: Mapping[str, Any], field: str, limits: Limits) -> None:
    """Optuna's own bookkeeping is small; a snapshot's is held to the user-attr bounds."""
    limits.check_user_attrs(attrs, field)


def _check_qmc_indexes(system_attrs: Mapping[str, Any], n_trials: int) -> None:
    """Each QMC index counts the trials sampled so far: at most one per trial the study has."""
    for key, value in system_attrs.items():
        if not key.startswith(QMC_INDEX_PREFIX):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < n_trials:
            raise BridgeError(
                ErrorKind.SNAPSHOT_INVALID,
                f"invalid snapshot (bad_shape): QMC sample index {value!r} at "
                f"`{_BODY}.system_attrs.{key}` is not one of a study of {n_trials} trials "
                f"(-1 to {n_trials - 1})",
                reason="bad_shape",
            )
