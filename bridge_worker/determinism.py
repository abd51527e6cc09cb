"""Seeded samplers whose suggestions survive a restart.

Optuna's samplers draw from random generators that live in memory: a seeded study that is
continued by a restarted worker (or a fresh one) gets different suggestions from the ones an
uninterrupted worker would have given, because the generators start again from the seed. Here the
suggestion for trial ``k`` is made a pure function of (seed, k, the stored trials): just before a
trial is sampled (Optuna's ``before_trial`` hook, when the trial number is known), every random
generator the sampler owns is re-seeded in place from a hash of (seed, k, where the generator sits
in the sampler). Everything else a sampler uses (TPE's model, NSGA-II's generations, CMA-ES's
state) is rebuilt from the stored trials, so the whole suggestion is reproducible.

Limits: it needs a ``seed``; the storage must hold the same trials (same parameters, values and
states) when trial ``k`` is sampled, which concurrent workers on one study break by design; and
CMA-ES keeps its optimizer state in trial attrs that snapshots leave out, so an imported CMA-ES
study restarts its adaptation.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import optuna
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.trial import FrozenTrial


def pin_to_trial_number(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Make ``sampler`` re-seed all its generators from (seed, trial number) before each trial."""
    original = sampler.before_trial

    def before_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        reseed(sampler, seed, trial.number)
        original(study, trial)

    sampler.before_trial = before_trial  # type: ignore[method-assign]


def reseed(sampler: optuna.samplers.BaseSampler, seed: int, number: int) -> None:
    _reseed_tree(sampler, f"{seed}:{number}", "sampler", set())


def _reseed_tree(obj: Any, key: str, path: str, seen: set[int]) -> None:
    """Walk the sampler's own objects (child samplers, strategies) and re-seed each generator.

    A generator shared by two objects (NSGA-II hands its own to its child-generation strategy) is
    seeded once, in place, so the sharing is kept.
    """
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for name, value in sorted(vars(obj).items()):
        where = f"{path}.{name}"
        if isinstance(value, LazyRandomState):
            if id(value) not in seen:
                seen.add(id(value))
                value._rng = np.random.RandomState(_derive(key, where))
        elif isinstance(value, np.random.RandomState):
            if id(value) not in seen:
                seen.add(id(value))
                value.seed(_derive(key, where))
        elif _is_sampler_part(value):
            _reseed_tree(value, key, where, seen)


def _is_sampler_part(value: Any) -> bool:
    module = type(value).__module__
    return hasattr(value, "__dict__") and module.startswith("optuna.samplers")


def _derive(key: str, where: str) -> int:
    digest = hashlib.blake2b(f"{key}:{where}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")
