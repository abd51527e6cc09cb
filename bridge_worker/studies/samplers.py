"""Sampler and pruner specs (wire) to Optuna objects.

The specs are closed tagged unions in the schema: a frame can pick a built-in sampler or pruner and
set its JSON-expressible options, nothing else; no option can name a Python object or a path. Where
Optuna takes an object (a crossover, an independent sampler, a wrapped pruner) the spec names it and
this module builds it. Constraints need no option: ``tell`` stores them the way Optuna's
``Trial.set_constraint`` does, and every sampler that supports constrained optimization reads them.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from bridge_worker.studies.cmaes_state import SafeCmaEsSampler
from bridge_worker.studies.determinism import pin_to_trial_number
from bridge_worker.studies.random_sampler import RandomSampler
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.schema import (
    BruteForceSamplerSpec,
    CmaEsSamplerSpec,
    Crossover,
    GPSamplerSpec,
    GridSamplerSpec,
    HyperbandPrunerSpec,
    MedianPrunerSpec,
    NopPrunerSpec,
    NSGAIIISamplerSpec,
    NSGAIISamplerSpec,
    PatientPrunerSpec,
    PercentilePrunerSpec,
    PrunerSpec,
    QMCSamplerSpec,
    RandomSamplerSpec,
    SamplerSpec,
    SuccessiveHalvingPrunerSpec,
    ThresholdPrunerSpec,
    TPESamplerSpec,
    WilcoxonPrunerSpec,
)

EXTRAS = {"cmaes": "samplers", "scipy": "samplers", "torch": "gp"}
"""The optuna-bridge extra that installs a sampler's missing package."""

_NEEDS: dict[type[msgspec.Struct], tuple[str, ...]] = {
    CmaEsSamplerSpec: ("cmaes",),
    GPSamplerSpec: ("scipy", "torch"),
    QMCSamplerSpec: ("scipy",),
}

_SAMPLERS: dict[type[msgspec.Struct], Callable[..., optuna.samplers.BaseSampler]] = {
    RandomSamplerSpec: RandomSampler,  # Optuna's, without rebuilding its transform per parameter
    TPESamplerSpec: optuna.samplers.TPESampler,
    CmaEsSamplerSpec: SafeCmaEsSampler,  # never pickle.loads what the storage holds
    GPSamplerSpec: optuna.samplers.GPSampler,
    NSGAIISamplerSpec: optuna.samplers.NSGAIISampler,
    NSGAIIISamplerSpec: optuna.samplers.NSGAIIISampler,
    QMCSamplerSpec: optuna.samplers.QMCSampler,
    GridSamplerSpec: optuna.samplers.GridSampler,
    BruteForceSamplerSpec: optuna.samplers.BruteForceSampler,
}

_PRUNERS: dict[type[msgspec.Struct], Callable[..., optuna.pruners.BasePruner]] = {
    NopPrunerSpec: optuna.pruners.NopPruner,
    MedianPrunerSpec: optuna.pruners.MedianPruner,
    PercentilePrunerSpec: optuna.pruners.PercentilePruner,
    SuccessiveHalvingPrunerSpec: optuna.pruners.SuccessiveHalvingPruner,
    HyperbandPrunerSpec: optuna.pruners.HyperbandPruner,
    ThresholdPrunerSpec: optuna.pruners.ThresholdPruner,
    WilcoxonPrunerSpec: optuna.pruners.WilcoxonPruner,
    PatientPrunerSpec: optuna.pruners.PatientPruner,
}


def sampler_name(spec: SamplerSpec | None) -> str:
    return "tpe" if spec is None else msgspec.inspect.type_info(type(spec)).tag  # type: ignore[attr-defined]


MAX_GRID_POINTS = 1_000_000
MAX_REFERENCE_POINTS = 100_000


def check_sampler_fits(spec: SamplerSpec | None, n_objectives: int) -> None:
    """Refuse, before building anything, samplers whose options would make Optuna enumerate
    more than memory holds: a grid's points, NSGA-III's default reference points."""
    if isinstance(spec, GridSamplerSpec):
        points = math.prod(len(values) for values in spec.search_space.values())
        if points > MAX_GRID_POINTS:
            raise invalid_params(
                "$.params.sampler.search_space",
                f"a grid of {points} points; at most {MAX_GRID_POINTS}",
            )
    if isinstance(spec, NSGAIIISamplerSpec):
        if spec.reference_points is not msgspec.UNSET:
            if any(len(point) != n_objectives for point in spec.reference_points):
                raise invalid_params(
                    "$.params.sampler.reference_points",
                    f"every reference point needs {n_objectives} coordinates (one per objective)",
                )
            return
        p = 3 if spec.dividing_parameter is msgspec.UNSET else spec.dividing_parameter
        points = math.comb(n_objectives + p - 1, p)
        if points > MAX_REFERENCE_POINTS:
            raise invalid_params(
                "$.params.sampler.dividing_parameter",
                f"{points} reference points for {n_objectives} objectives; at most "
                f"{MAX_REFERENCE_POINTS}: lower dividing_parameter",
            )


DEFAULT_N_EI_CANDIDATES = 24
"""Optuna's TPE default."""


def check_sampler_cost(
    spec: SamplerSpec | None,
    distributions: Mapping[str, BaseDistribution],
    limits: Limits,
    field: str,
) -> None:
    """Refuse a sampler and search space whose every ask would cost more than the operator
    allows: TPE scores ``n_ei_candidates`` candidates per parameter, BruteForce lists every value
    of a parameter at each ask. ``field`` is the JSONPath of the search space."""
    if spec is None or isinstance(spec, TPESamplerSpec):
        n_ei = DEFAULT_N_EI_CANDIDATES
        if spec is not None and isinstance(spec.n_ei_candidates, int):
            n_ei = spec.n_ei_candidates
        limits.check(
            "max_ei_candidates",
            "TPE candidates per trial (n_ei_candidates x parameters)",
            n_ei * len(distributions),
        )
    if isinstance(spec, BruteForceSamplerSpec):
        for name, distribution in distributions.items():
            count = bruteforce_candidates(distribution)
            if count is None:
                raise invalid_params(
                    f"{field}.{name}.step", "BruteForce needs a step on float parameters"
                )
            limits.check(
                "max_bruteforce_candidates", f"values of {field}.{name} under BruteForce", count
            )


def bruteforce_candidates(distribution: BaseDistribution) -> int | None:
    """How many values BruteForce lists for a parameter (None: a float without step)."""
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            return distribution.high - distribution.low + 1
        return (distribution.high - distribution.low) // distribution.step + 1
    if isinstance(distribution, FloatDistribution):
        if distribution.step is None:
            return None if distribution.low != distribution.high else 1
        return int((distribution.high - distribution.low) // distribution.step) + 1
    if isinstance(distribution, CategoricalDistribution):
        return len(distribution.choices)
    return None


def build_study_sampler(spec: SamplerSpec | None) -> optuna.samplers.BaseSampler:
    """The sampler a study runs with: a seeded one is pinned to trial numbers, so its
    suggestions are reproducible across restarts (see :mod:`bridge_worker.studies.determinism`)."""
    sampler = build_sampler(spec)
    seed = getattr(spec, "seed", msgspec.UNSET)
    if isinstance(seed, int):
        pin_to_trial_number(sampler, seed)
    return sampler


def build_sampler(spec: SamplerSpec | None) -> optuna.samplers.BaseSampler:
    """The sampler a spec names; no spec means Optuna's default (TPE, unseeded).

    A sampler whose optional package is missing (cmaes, scipy, torch) is a ``missing_dependency``
    error naming the package and the extra that installs it, at ``create`` rather than later.
    """
    if spec is None:
        return optuna.samplers.TPESampler()
    options = _given_options(spec)
    if "independent_sampler" in options:
        options["independent_sampler"] = build_sampler(options["independent_sampler"])
    if "reference_points" in options:
        options["reference_points"] = np.asarray(options["reference_points"], dtype=float)
    try:
        with warnings.catch_warnings():
            # Experimental-feature warnings are Optuna's business, not the parent's.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if "crossover" in options:
                options["crossover"] = _crossover(options["crossover"])
            sampler = _SAMPLERS[type(spec)](**options)
            _check_dependencies(spec)
    except ImportError as exc:
        raise missing_dependency(sampler_name(spec), exc) from None
    except (ValueError, TypeError) as exc:  # Optuna's cross-option checks
        raise BridgeError(
            ErrorKind.INVALID_PARAMS, f"invalid sampler options: {exc}", field="$.params.sampler"
        ) from None
    return sampler


def build_pruner(spec: PrunerSpec | None) -> optuna.pruners.BasePruner:
    """The pruner a spec names; no spec means Optuna's default (median)."""
    if spec is None:
        return optuna.pruners.MedianPruner()
    options = _given_options(spec)
    if isinstance(spec, PatientPrunerSpec):
        options["wrapped_pruner"] = (
            None if spec.wrapped_pruner is None else build_pruner(spec.wrapped_pruner)
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _PRUNERS[type(spec)](**options)
    except (ValueError, TypeError) as exc:  # e.g. threshold needs lower or upper
        raise BridgeError(
            ErrorKind.INVALID_PARAMS, f"invalid pruner options: {exc}", field="$.params.pruner"
        ) from None


def missing_dependency(sampler: str, exc: ImportError) -> BridgeError:
    package = exc.name or _package_in(str(exc))
    extra = EXTRAS.get(package or "", "samplers")
    return BridgeError(
        ErrorKind.MISSING_DEPENDENCY,
        f"sampler {sampler!r} needs the Python package {package!r}, which is not installed: "
        f"pip install 'optuna-bridge[{extra}]'",
        sampler=sampler,
        package=package,
    )


def _check_dependencies(spec: SamplerSpec) -> None:
    """Import now what a sampler would otherwise import at its first ask."""
    for package in _NEEDS.get(type(spec), ()):
        importlib.import_module(package)


def _package_in(message: str) -> str | None:
    for package in EXTRAS:
        if package in message:
            return package
    return None


def _crossover(name: Crossover) -> optuna.samplers.nsgaii.BaseCrossover:
    crossovers: dict[str, Callable[[], optuna.samplers.nsgaii.BaseCrossover]] = {
        "uniform": optuna.samplers.nsgaii.UniformCrossover,
        "blxalpha": optuna.samplers.nsgaii.BLXAlphaCrossover,
        "sbx": optuna.samplers.nsgaii.SBXCrossover,
        "spx": optuna.samplers.nsgaii.SPXCrossover,
        "undx": optuna.samplers.nsgaii.UNDXCrossover,
        "vsbx": optuna.samplers.nsgaii.VSBXCrossover,
    }
    return crossovers[name]()


def _given_options(spec: msgspec.Struct) -> dict[str, Any]:
    """The options the parent set; the rest stay at the constructor's defaults."""
    return {k: v for k, v in msgspec.structs.asdict(spec).items() if v is not msgspec.UNSET}
