"""Stop rules: whether a single-objective study is done, derived from its rules and its trials.

Nothing is latched: a study is stopped exactly while one of its rules holds over the trials the
storage holds now, so every worker serving the study (restarted or not, on any storage) and every
import of its snapshot agree without writing anything, and ``set_stop`` takes effect at once. The
rules are checked in a fixed order (``target``, ``patience``, ``max_trials``, ``max_seconds``); the
first that holds is the one reported.

Cost: studies without rules pay nothing. A study with rules reads its finished trials once per
``ask``/``tell`` (no deep copy; the samplers read them anyway) and sorts them when ``patience`` is
set: O(n log n) in the number of trials.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from msgspec import UNSET, UnsetType
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.wire.schema import Direction, Stopped, StopRules, StudyConfig

if TYPE_CHECKING:
    from bridge_worker.studies.study import StudyEntry

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def check_rules(rules: StopRules, n_objectives: int, field: str) -> None:
    """Refuse rules a study cannot have: several objectives, ``min_delta`` without ``patience``,
    a non-finite ``target``."""
    if n_objectives != 1:
        raise invalid_params(field, "stop rules need a single-objective study")
    if rules.min_delta and rules.patience is UNSET:
        raise invalid_params(f"{field}.min_delta", "min_delta needs patience")
    if rules.target is not UNSET and not math.isfinite(rules.target):
        raise invalid_params(f"{field}.target", "target must be finite")


def has_rules(rules: StopRules | None) -> bool:
    return rules is not None and any(
        value is not UNSET
        for value in (rules.target, rules.patience, rules.max_trials, rules.max_seconds)
    )


def evaluate(
    rules: StopRules,
    direction: Direction,
    trials: Sequence[FrozenTrial],
    now: datetime.datetime | None = None,
) -> Stopped | None:
    """The first rule that holds over ``trials`` (every trial of the study), or None.

    ``now`` is a naive local time, as Optuna stores trial start times."""
    sign = 1.0 if direction == "minimize" else -1.0
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if rules.target is not UNSET and complete:
        best = min(complete, key=lambda t: sign * t.values[0])
        if sign * best.values[0] <= sign * rules.target:
            return Stopped(
                "target", {"target": rules.target, "best": best.values[0], "number": best.number}
            )
    if rules.patience is not UNSET:
        stalled = _stalled(complete, sign, rules.min_delta)
        if stalled is not None and stalled[0] >= rules.patience:
            count, best_value, best_number = stalled
            return Stopped(
                "patience",
                {
                    "patience": rules.patience,
                    "min_delta": rules.min_delta,
                    "without_improvement": count,
                    "best": best_value,
                    "number": best_number,
                },
            )
    if rules.max_trials is not UNSET:
        finished = sum(1 for t in trials if t.state in FINISHED)
        if finished >= rules.max_trials:
            return Stopped("max_trials", {"max_trials": rules.max_trials, "trials": finished})
    if rules.max_seconds is not UNSET:
        starts = [t.datetime_start for t in trials if t.datetime_start is not None]
        if starts:
            elapsed = ((now or datetime.datetime.now()) - min(starts)).total_seconds()
            if elapsed >= rules.max_seconds:
                return Stopped(
                    "max_seconds", {"max_seconds": rules.max_seconds, "elapsed": round(elapsed, 3)}
                )
    return None


def _stalled(
    complete: list[FrozenTrial], sign: float, min_delta: float
) -> tuple[int, float, int] | None:
    """Completed trials since the last improvement of more than ``min_delta`` (in completion
    order), with the best value and its trial number; None before any trial completed."""
    ordered = sorted(
        complete, key=lambda t: (t.datetime_complete or datetime.datetime.min, t.number)
    )
    best: FrozenTrial | None = None
    count = 0
    for trial in ordered:
        if best is None or sign * (best.values[0] - trial.values[0]) > min_delta:
            best, count = trial, 0
        else:
            count += 1
    if best is None:
        return None
    return count, best.values[0], best.number


def study_stopped(study: str, stopped: Stopped) -> BridgeError:
    return BridgeError(
        ErrorKind.STUDY_STOPPED,
        f"study {study!r} is stopped: its {stopped.rule} rule holds (set_stop changes or clears "
        "the rules)",
        study=study,
        rule=stopped.rule,
        detail=stopped.detail,
    )


def rules_of(config: StudyConfig) -> StopRules | None:
    """The study's stop rules, None when it has none (an empty ``stop`` is none)."""
    rules = config.stop
    if isinstance(rules, UnsetType) or not has_rules(rules):
        return None
    return rules


def stopped_study(
    config: StudyConfig,
    directions: Sequence[Direction],
    trials: Callable[[], Sequence[FrozenTrial]],
) -> Stopped | None:
    """Why the study is stopped, None if it is not; ``trials`` is read only if it has rules."""
    rules = rules_of(config)
    if rules is None or len(directions) != 1:
        return None
    return evaluate(rules, directions[0], trials())


def stopped_entry(entry: StudyEntry) -> Stopped | None:
    """Checked by every ask and tell: a study without rules costs one attribute test (not its
    directions, a storage read)."""
    if rules_of(entry.config) is None:
        return None
    return stopped_study(
        entry.config, entry.directions, lambda: entry.study.get_trials(deepcopy=False)
    )
