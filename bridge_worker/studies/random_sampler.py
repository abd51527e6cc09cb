"""Optuna's RandomSampler without the work it repeats for every parameter of every trial.

``RandomSampler.sample_independent`` builds a ``_SearchSpaceTransform`` (bounds as numpy arrays,
checks of the distribution) for each parameter it samples, although a study's search space is
the same from one trial to the next: a tenth of a Random ``ask`` on memory storage (issue 24).
This sampler keeps the transform of each parameter name for as long as its distribution stays
the same and draws from the same generator with the same call, so its suggestions are exactly
Optuna's (``tests/studies/test_random_sampler.py`` compares them, seeded, for every kind of
distribution); the seed pinning of :mod:`bridge_worker.studies.determinism` finds its generator
where it finds Optuna's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

MAX_CACHED_PARAMS = 1024
"""Transforms kept per sampler (one per parameter name); names past this are sampled as Optuna
does, so asks that bring ever new names cannot grow the cache without bound."""


class RandomSampler(optuna.samplers.RandomSampler):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)
        self._transforms: dict[
            str, tuple[BaseDistribution, _SearchSpaceTransform, np.ndarray, np.ndarray]
        ] = {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        cached = self._transforms.get(param_name)
        if cached is None or (
            cached[0] is not param_distribution and cached[0] != param_distribution
        ):
            trans = _SearchSpaceTransform({param_name: param_distribution})
            cached = (param_distribution, trans, trans.bounds[:, 0], trans.bounds[:, 1])
            if len(self._transforms) < MAX_CACHED_PARAMS or param_name in self._transforms:
                self._transforms[param_name] = cached
        _, trans, low, high = cached
        return trans.untransform(self._rng.rng.uniform(low, high))[param_name]
