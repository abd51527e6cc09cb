"""Search-space specs (wire) to Optuna distributions, with checks that name the bad field.

The schema already guarantees types; this module checks what types cannot say (``low <= high``,
``log`` needs ``low > 0``, ...) and turns each spec into the Optuna distribution it stands for.
A distribution converts back to the same spec (``to_spec``) so a study's space can be stored and
exported as plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from bridge_worker.wire.errors import invalid_params
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.schema import (
    CategoricalDistributionSpec,
    DistributionSpec,
    FloatDistributionSpec,
    IntDistributionSpec,
    JsonScalar,
)
from bridge_worker.wire.storage_bounds import check_name_text


def to_distributions(
    space: Mapping[str, DistributionSpec], field: str, limits: Limits | None = None
) -> dict[str, BaseDistribution]:
    """Convert a whole space; ``field`` is the JSONPath of the space in the request. With
    ``limits`` (a space that comes from a frame), the operator's limits are enforced too."""
    if limits is not None:
        limits.check("max_params", f"parameters at {field}", len(space))
        for name in space:
            limits.check("max_name_length", f"length of parameter name at {field}", len(name))
            check_name_text(name, f"{field}.{name[:64]}", "a parameter name")
    return {name: to_distribution(spec, f"{field}.{name}", limits) for name, spec in space.items()}


def to_distribution(
    spec: DistributionSpec, field: str, limits: Limits | None = None
) -> BaseDistribution:
    if isinstance(spec, FloatDistributionSpec):
        _check_bounds(spec.low, spec.high, spec.log, field)
        if spec.step is not None:
            if not (math.isfinite(spec.step) and spec.step > 0):
                raise invalid_params(f"{field}.step", "step must be a finite number > 0")
            if spec.log:
                raise invalid_params(f"{field}.step", "step cannot be used with log")
        try:
            return FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)
        except ArithmeticError:  # Optuna's decimal arithmetic on an absurdly small step
            raise invalid_params(f"{field}.step", "step is too small for this range") from None
    if isinstance(spec, IntDistributionSpec):
        _check_bounds(spec.low, spec.high, spec.log, field)
        if spec.step < 1:
            raise invalid_params(f"{field}.step", "step must be >= 1")
        if spec.log and spec.step != 1:
            raise invalid_params(f"{field}.step", "step cannot be used with log")
        return IntDistribution(spec.low, spec.high, log=spec.log, step=spec.step)
    if not spec.choices:
        raise invalid_params(f"{field}.choices", "choices must not be empty")
    if limits is not None:
        limits.check("max_choices", f"choices at {field}", len(spec.choices))
        longest = max((len(c) for c in spec.choices if isinstance(c, str)), default=0)
        limits.check("max_choice_length", f"characters of a choice at {field}", longest)
    for i, choice in enumerate(spec.choices):
        if isinstance(choice, float) and not math.isfinite(choice):
            raise invalid_params(f"{field}.choices[{i}]", "choices must be finite numbers")
    if len(set(map(_choice_key, spec.choices))) != len(spec.choices):
        raise invalid_params(f"{field}.choices", "choices must be distinct")
    return CategoricalDistribution(list(spec.choices))


def to_spec(distribution: BaseDistribution) -> DistributionSpec:
    """The wire spec an Optuna distribution came from (used to store and export spaces)."""
    if isinstance(distribution, FloatDistribution):
        return FloatDistributionSpec(
            low=distribution.low,
            high=distribution.high,
            log=distribution.log,
            step=distribution.step,
        )
    if isinstance(distribution, IntDistribution):
        return IntDistributionSpec(
            low=distribution.low,
            high=distribution.high,
            log=distribution.log,
            step=distribution.step,
        )
    if isinstance(distribution, CategoricalDistribution):
        return CategoricalDistributionSpec(choices=list(distribution.choices))
    raise TypeError(f"unsupported distribution {distribution!r}")


def check_value(distribution: BaseDistribution, value: JsonScalar, field: str) -> None:
    """Reject a fixed/enqueued parameter value its distribution does not contain."""
    try:
        internal = distribution.to_internal_repr(value)
        contained = distribution._contains(internal)
    except (ValueError, TypeError):
        contained = False
    if not contained or isinstance(value, bool) != _is_bool_choice(distribution, value):
        raise invalid_params(field, f"value {value!r} is not in the parameter's distribution")


def _is_bool_choice(distribution: BaseDistribution, value: JsonScalar) -> bool:
    return isinstance(distribution, CategoricalDistribution) and isinstance(value, bool)


def _choice_key(choice: JsonScalar) -> tuple[str, JsonScalar]:
    """Distinctness that does not confuse ``1``, ``1.0`` and ``true`` (Python would)."""
    return (type(choice).__name__, choice)


def _check_bounds(low: float, high: float, log: bool, field: str) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise invalid_params(f"{field}.low", "low and high must be finite numbers")
    if low > high:
        raise invalid_params(f"{field}.low", f"low ({low}) must be <= high ({high})")
    if log and low <= 0:
        raise invalid_params(f"{field}.low", f"log needs low > 0 (got {low})")
    if not math.isfinite(high - low):
        raise invalid_params(f"{field}.high", "high - low must be a finite number")
