"""Sampler and pruner options resolved: every default filled in, with the Optuna version that
chose them, so a study keeps its sampler across library upgrades.

Optuna changes defaults between releases (5.0 made TPE multivariate with a constant liar, and the
default sampler of multi-objective studies TPE). A study stores its configuration; if that held
only the options the parent gave, a restart or an import under a newer Optuna would rebuild the
sampler with the new defaults and the study would silently change algorithm midway. So at
``create`` (and the first time an older study or snapshot is loaded) each option left out is
filled in with the value the built sampler or pruner actually uses, and the config records
``optuna_version``.

What is resolved: options with a JSON value the wire spec can hold. Left out: seeds (no seed means
"unseeded", which a value would change), options whose default is an object or ``None`` (an
independent sampler, a crossover, ``x0``), and TPE's options Optuna 4.9 deprecated (passing them
warns, and Optuna 6 removes them). Reading the built objects touches private attributes
(``_<option>``); this module is the one place that does, and
``tests/studies/test_resolved_options.py``
pins it for every sampler and pruner type.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import msgspec
import optuna
from msgspec import UNSET

from bridge_worker.schema import (
    PatientPrunerSpec,
    PrunerSpec,
    SamplerSpec,
    StudyConfig,
    TPESamplerSpec,
)

OPTUNA_VERSION = optuna.__version__

_NOT_RESOLVED = frozenset(("seed",))
_DEPRECATED: dict[type[msgspec.Struct], frozenset[str]] = {
    TPESamplerSpec: frozenset(
        ("prior_weight", "consider_magic_clip", "consider_endpoints", "warn_independent_sampling")
    ),
}


def is_resolved(config: StudyConfig) -> bool:
    return config.optuna_version is not UNSET


def resolve_config(
    config: StudyConfig,
    n_objectives: int,
    build_sampler: Callable[[SamplerSpec | None], optuna.samplers.BaseSampler],
    build_pruner: Callable[[PrunerSpec | None], optuna.pruners.BasePruner],
) -> StudyConfig:
    """``config`` with its sampler and pruner resolved (no spec: Optuna's defaults, TPE and
    median) and this Optuna's version; a config already resolved is returned as it is."""
    if is_resolved(config):
        return config
    sampler_spec = config.sampler or TPESamplerSpec()
    pruner_spec = config.pruner or msgspec.convert({"type": "median"}, PrunerSpec)
    sampler = _resolve(sampler_spec, build_sampler(sampler_spec), n_objectives)
    pruner = _resolve(pruner_spec, build_pruner(pruner_spec), n_objectives)
    return msgspec.structs.replace(
        config,
        sampler=msgspec.convert(sampler, SamplerSpec),
        pruner=msgspec.convert(pruner, PrunerSpec),
        optuna_version=OPTUNA_VERSION,
    )


def _resolve(spec: msgspec.Struct, built: object, n_objectives: int) -> dict[str, Any]:
    """The spec as builtins, with each option it leaves out set to the built object's value."""
    resolved: dict[str, Any] = msgspec.to_builtins(spec)
    skipped = _NOT_RESOLVED | _DEPRECATED.get(type(spec), frozenset())
    defaults = _defaults(type(built))
    for name in msgspec.structs.fields(spec):
        field = name.name
        if field in resolved or field in skipped:
            continue
        value = _value(built, field, defaults, n_objectives)
        if isinstance(value, bool | int | str) or (
            isinstance(value, float) and math.isfinite(value)
        ):
            resolved[field] = value
    if isinstance(spec, PatientPrunerSpec) and spec.wrapped_pruner is not None:
        wrapped = getattr(built, "_wrapped_pruner", None)
        resolved["wrapped_pruner"] = _resolve(spec.wrapped_pruner, wrapped, n_objectives)
    return resolved


def _value(built: object, field: str, defaults: dict[str, Any], n_objectives: int) -> Any:
    if field == "multivariate" and isinstance(built, optuna.samplers.TPESampler):
        given = getattr(built, "_multivariate", None)
        if given is not None:
            return given
        # Optuna 5: multivariate for one objective, independent for several (unless grouped)
        return bool(getattr(built, "_group", False)) or n_objectives == 1
    value = getattr(built, f"_{field}", None)
    return defaults.get(field) if value is None else value


def _defaults(kind: type) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parameters = inspect.signature(kind).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
