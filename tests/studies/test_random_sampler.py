"""The worker's RandomSampler keeps each parameter's transform between trials (issue 24): its
suggestions must stay exactly Optuna's, and the work it skips must stay skipped."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from bridge_worker.studies import random_sampler
from bridge_worker.studies.random_sampler import RandomSampler
from tests.helpers import endpoint_result, make_endpoint

SPACE: dict[str, BaseDistribution] = {
    "x": FloatDistribution(-10.0, 10.0),
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "q": FloatDistribution(0.0, 1.0, step=0.1),
    "n": IntDistribution(1, 100),
    "k": IntDistribution(2, 64, log=True),
    "s": IntDistribution(0, 30, step=3),
    "c": CategoricalDistribution(["a", 1, None, 2.5]),
    "one": FloatDistribution(1.0, 1.0),
}


def _suggestions(sampler: optuna.samplers.BaseSampler, trials: int) -> list[dict[str, Any]]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler)
    found = []
    for i in range(trials):
        space = dict(SPACE)
        if i % 3 == 0:  # a distribution that changes under the same name
            space["x"] = FloatDistribution(-float(i), 10.0)
        trial = study.ask(space)
        found.append(trial.params)
        study.tell(trial, 0.0)
    return found


def test_suggestions_are_optunas_for_every_kind_of_distribution() -> None:
    assert _suggestions(RandomSampler(seed=7), 60) == _suggestions(
        optuna.samplers.RandomSampler(seed=7), 60
    )


def test_a_parameter_past_the_cache_bound_is_still_sampled_as_optuna_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random_sampler, "MAX_CACHED_PARAMS", 2)
    sampler = RandomSampler(seed=3)
    assert _suggestions(sampler, 10) == _suggestions(optuna.samplers.RandomSampler(seed=3), 10)
    assert len(sampler._transforms) == 2


def test_the_transform_is_built_once_per_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    real = optuna._transform._SearchSpaceTransform

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(random_sampler, "_SearchSpaceTransform", counted)
    monkeypatch.setattr(optuna.samplers._random, "_SearchSpaceTransform", counted)
    endpoint = make_endpoint()
    endpoint.dispatcher.registry.open()
    space = {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "c": {"type": "categorical", "choices": ["a", "b"]},
    }
    sampler = {"type": "random", "seed": 1}
    endpoint_result(endpoint, "create", {"study": "s", "search_space": space, "sampler": sampler})
    for _ in range(20):
        (trial,) = endpoint_result(endpoint, "ask", {"study": "s"})["trials"]
        endpoint_result(endpoint, "tell", {"study": "s", "number": trial["number"], "value": 1.0})
    assert len(built) == 2  # Optuna's RandomSampler: 40
