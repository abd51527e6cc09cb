"""Sampler and pruner specs (wire) to Optuna objects.

The specs are closed tagged unions in the schema: a frame can pick a built-in sampler or pruner and
set its JSON-expressible options, nothing else; no option can name a Python object or a path.
"""

from __future__ import annotations

from typing import Any

import msgspec
import optuna

from bridge_worker.schema import (
    MedianPrunerSpec,
    NopPrunerSpec,
    PrunerSpec,
    RandomSamplerSpec,
    SamplerSpec,
    TPESamplerSpec,
)


def build_sampler(spec: SamplerSpec | None) -> optuna.samplers.BaseSampler:
    """The sampler a spec names; no spec means Optuna's default (TPE, unseeded)."""
    if spec is None:
        return optuna.samplers.TPESampler()
    options = _given_options(spec)
    if isinstance(spec, RandomSamplerSpec):
        return optuna.samplers.RandomSampler(**options)
    if isinstance(spec, TPESamplerSpec):
        return optuna.samplers.TPESampler(**options)
    raise AssertionError(f"unhandled sampler spec {spec!r}")


def build_pruner(spec: PrunerSpec | None) -> optuna.pruners.BasePruner:
    """The pruner a spec names; no spec means Optuna's default (median)."""
    if spec is None:
        return optuna.pruners.MedianPruner()
    options = _given_options(spec)
    if isinstance(spec, NopPrunerSpec):
        return optuna.pruners.NopPruner()
    if isinstance(spec, MedianPrunerSpec):
        return optuna.pruners.MedianPruner(**options)
    raise AssertionError(f"unhandled pruner spec {spec!r}")


def _given_options(spec: msgspec.Struct) -> dict[str, Any]:
    """The options the parent set; the rest stay at the constructor's defaults."""
    return {k: v for k, v in msgspec.structs.asdict(spec).items() if v is not msgspec.UNSET}
