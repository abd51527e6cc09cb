"""What many test files share: the paths of the tree, the worker's logic without a process (and
one request through it), the comparison of replayed frames, and studies built fast for tests that
need many trials.

Fixtures stay in ``conftest.py``; the throw-away database servers in ``servers.py``; the race
scenarios (a worker paused at a chosen write) in ``races.py``."""

from __future__ import annotations

import datetime
import math
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import optuna
import orjson

from bridge_worker.wire.rpc import Endpoint
from bridge_worker.wiring import build_endpoint

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "protocol" / "examples"
PYTHON = sys.executable


def make_endpoint(storage: str = "memory") -> Endpoint:
    """The worker's logic without any process or pipe."""
    return build_endpoint(storage)


def endpoint_reply(endpoint: Endpoint, method: str, params: dict[str, Any]) -> Any:
    """The reply to one request handled in-process (the bytes a parent would send), decoded."""
    (out,) = endpoint.handle(orjson.dumps({"id": 1, "method": method, "params": params}))
    return orjson.loads(out)


def endpoint_result(endpoint: Endpoint, method: str, params: dict[str, Any]) -> Any:
    """The result of one request handled in-process; fails on an error reply. For tests that
    only need a study built, not a process."""
    reply = endpoint_reply(endpoint, method, params)
    assert "result" in reply, reply
    return reply["result"]


def same_frames(got: Any, expected: Any) -> bool:
    """Exact, except that floats computed by numpy (importances) may differ in their last digits
    between numpy releases: they match within a relative 1e-9. Types still have to agree, so an
    int where a float is expected (or the reverse) is a mismatch."""
    if isinstance(expected, float) and isinstance(got, float):
        return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)
    if type(got) is not type(expected):
        return False
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(
            same_frames(got[k], expected[k]) for k in expected
        )
    if isinstance(expected, list):
        return len(got) == len(expected) and all(map(same_frames, got, expected))
    return bool(got == expected)


def figure_study(n: int) -> optuna.Study:
    """An in-memory study of ``n`` finished trials over every kind of parameter, with intermediate
    values and trials a few milliseconds apart: what every figure kind can draw."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    rng = random.Random(3)
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    for i in range(n):
        x, lr = rng.uniform(-3, 3), 10 ** rng.uniform(-5, -1)
        layers, optimizer = rng.randint(1, 8), rng.choice(["adam", "sgd", "rmsprop"])
        value = x * x + 0.1 * layers + (optimizer == "sgd")
        trial = optuna.trial.create_trial(
            params={"x": x, "lr": lr, "layers": layers, "optimizer": optimizer},
            distributions={
                "x": optuna.distributions.FloatDistribution(-3, 3),
                "lr": optuna.distributions.FloatDistribution(1e-5, 0.1, log=True),
                "layers": optuna.distributions.IntDistribution(1, 8),
                "optimizer": optuna.distributions.CategoricalDistribution(
                    ["adam", "sgd", "rmsprop"]
                ),
            },
            value=value,
            intermediate_values={step: value + 3 - step for step in range(3)},
        )
        # Trials of a few milliseconds each: the case where every tick read the same second.
        trial.datetime_start = start + datetime.timedelta(milliseconds=7 * i)
        trial.datetime_complete = trial.datetime_start + datetime.timedelta(milliseconds=5)
        study.add_trial(trial)
    return study


def grow_sqlite_study(db: Path, study: str, n: int) -> None:
    """Make the study in the SQLite file ``db`` hold ``n`` trials by copying its first trial's rows
    with plain SQL: through the worker (or Optuna) a study of thousands of trials takes minutes to
    store. Used by the delete tests and ``scripts/long_frames.py``."""
    con = sqlite3.connect(db)
    try:
        (study_id,) = con.execute(
            "SELECT study_id FROM studies WHERE study_name = ?", (study,)
        ).fetchone()
        template, top = con.execute(
            "SELECT min(trial_id), max(number) FROM trials WHERE study_id = ?", (study_id,)
        ).fetchone()
        for k in range(1, n - top):
            new = con.execute(
                "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete)"
                " SELECT ?, study_id, state, datetime_start, datetime_complete FROM trials"
                " WHERE trial_id = ?",
                (top + k, template),
            ).lastrowid
            for table, columns in (
                ("trial_params", "param_name, param_value, distribution_json"),
                ("trial_values", "objective, value, value_type"),
                ("trial_user_attributes", "key, value_json"),
                ("trial_system_attributes", "key, value_json"),
            ):
                con.execute(
                    f"INSERT INTO {table} (trial_id, {columns}) SELECT ?, {columns}"
                    f" FROM {table} WHERE trial_id = ?",
                    (new, template),
                )
        con.commit()
    finally:
        con.close()
