"""The optimization surface through frames: samplers, pruners, report, enqueue, attrs,
multi-objective, constraints, importance. Driven in-process (no pipes) for speed; the wire is
covered by the example conversations and the process tests."""

from __future__ import annotations

import importlib.util
from typing import Any

import optuna
import orjson
import pytest

from bridge_worker.wire.rpc import Endpoint
from tests.helpers import make_endpoint

SPACE = {
    "x": {"type": "float", "low": -3.0, "high": 3.0},
    "n": {"type": "int", "low": 1, "high": 5},
    "c": {"type": "categorical", "choices": ["a", "b", "c"]},
}


class Frames:
    """Calls through the worker's endpoint: the same bytes a parent would send."""

    def __init__(self) -> None:
        self.endpoint: Endpoint = make_endpoint()

    def reply(self, method: str, **params: Any) -> dict[str, Any]:
        (out,) = self.endpoint.handle(orjson.dumps({"id": 1, "method": method, "params": params}))
        reply: dict[str, Any] = orjson.loads(out)
        return reply

    def __call__(self, method: str, **params: Any) -> Any:
        reply = self.reply(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, **params: Any) -> dict[str, Any]:
        reply = self.reply(method, **params)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    def optimize(self, study: str, n_trials: int, n_objectives: int = 1) -> None:
        for _ in range(n_trials):
            (trial,) = self("ask", study=study)["trials"]
            p = trial["params"]
            first = (p["x"] - 1) ** 2 + p["n"]
            values = [first] if n_objectives == 1 else [first, (p["x"] + 1) ** 2]
            self("tell", study=study, number=trial["number"], values=values)


@pytest.fixture
def frames() -> Frames:
    return Frames()


SAMPLERS: list[dict[str, Any]] = [
    {"type": "random", "seed": 1},
    {
        "type": "tpe",
        "seed": 1,
        "n_startup_trials": 4,
        "multivariate": True,
        "group": True,
        "constant_liar": True,
        "consider_endpoints": True,
        "n_ei_candidates": 8,
        "prior_weight": 0.5,
    },
    {
        "type": "cmaes",
        "seed": 1,
        "n_startup_trials": 2,
        "sigma0": 0.5,
        "popsize": 4,
        "independent_sampler": {"type": "random", "seed": 2},
        "warn_independent_sampling": False,
    },
    {"type": "cmaes", "seed": 1, "with_margin": True, "x0": {"x": 0.0, "n": 3}},
    {
        "type": "nsga2",
        "seed": 1,
        "population_size": 4,
        "crossover": "blxalpha",
        "mutation_prob": 0.2,
    },
    {"type": "nsga3", "seed": 1, "population_size": 4, "crossover": "sbx", "dividing_parameter": 2},
    {"type": "qmc", "seed": 1, "qmc_type": "halton", "scramble": True},
    {"type": "grid", "search_space": {"x": [-1.0, 0.0, 1.0], "n": [1, 2], "c": ["a", "b"]}},
    {"type": "bruteforce", "seed": 1},
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s["type"])
def test_every_sampler_runs_a_short_study(frames: Frames, sampler: dict[str, Any]) -> None:
    space = SPACE
    if sampler["type"] == "bruteforce":  # enumerates: needs a finite space
        space = {
            "x": {"type": "float", "low": 0, "high": 1, "step": 0.5},
            "n": SPACE["n"],
            "c": SPACE["c"],
        }
    directions = ["minimize", "minimize"] if sampler["type"].startswith("nsga") else ["minimize"]
    frames("create", study="s", directions=directions, sampler=sampler, search_space=space)
    frames.optimize("s", 12, len(directions))
    trials = frames("trials", study="s")["trials"]
    assert len(trials) == 12 and all(t["state"] == "complete" for t in trials)
    if sampler["type"] == "grid":
        seen = {(t["params"]["x"], t["params"]["n"], t["params"]["c"]) for t in trials}
        assert len(seen) == 12  # the grid's 12 points, each once


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_gp_sampler(frames: Frames) -> None:
    frames(
        "create",
        study="s",
        sampler={"type": "gp", "seed": 1, "n_startup_trials": 3},
        search_space=SPACE,
    )
    frames.optimize("s", 6)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch installed")
def test_gp_without_torch_says_what_to_install(frames: Frames) -> None:
    error = frames.error("create", study="s", sampler={"type": "gp"})
    assert error["code"] == -32010
    assert error["data"] == {"kind": "missing_dependency", "sampler": "gp", "package": "torch"}
    assert "pip install 'optuna-bridge[gp]'" in error["message"]
    assert frames("list")["studies"] == []  # nothing half-created


PRUNERS: list[dict[str, Any]] = [
    {"type": "nop"},
    {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 1},
    {"type": "percentile", "percentile": 25.0, "n_startup_trials": 1},
    {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2},
    {"type": "hyperband", "min_resource": 1, "max_resource": 8, "reduction_factor": 2},
    {"type": "threshold", "upper": 5.0},
    {"type": "patient", "patience": 1, "wrapped_pruner": {"type": "median", "n_startup_trials": 1}},
    {"type": "patient", "patience": 0},
    {"type": "wilcoxon", "p_threshold": 0.2, "n_startup_steps": 1},
]


@pytest.mark.parametrize("pruner", PRUNERS, ids=lambda p: p["type"])
def test_every_pruner_through_report(frames: Frames, pruner: dict[str, Any]) -> None:
    frames(
        "create",
        study="s",
        sampler={"type": "random", "seed": 0},
        pruner=pruner,
        search_space=SPACE,
    )
    outcomes = []
    for i in range(6):
        (trial,) = frames("ask", study="s")["trials"]
        pruned = False
        for step in range(6):
            value = float(i * 10 + step)  # later trials are worse: prunable
            if frames("report", study="s", number=trial["number"], step=step, value=value)[
                "should_prune"
            ]:
                pruned = True
                break
        state = "pruned" if pruned else "complete"
        told = frames(
            "tell",
            study="s",
            number=trial["number"],
            **({"state": "pruned"} if pruned else {"value": float(i)}),
        )
        assert told["state"] == state
        outcomes.append(state)
    if pruner["type"] == "nop":
        assert "pruned" not in outcomes
    if pruner["type"] in ("median", "threshold", "percentile"):
        assert "pruned" in outcomes


def test_report_prune_flow_stores_everything(frames: Frames) -> None:
    frames(
        "create", study="s", pruner={"type": "median", "n_startup_trials": 1}, search_space=SPACE
    )
    (first,) = frames("ask", study="s")["trials"]
    for step in range(3):
        assert frames("report", study="s", number=first["number"], step=step, value=1.0) == {
            "should_prune": False
        }
    frames("tell", study="s", number=first["number"], value=1.0)
    (second,) = frames("ask", study="s")["trials"]
    assert frames("report", study="s", number=second["number"], step=0, value=5.0) == {
        "should_prune": True
    }
    # a step reported twice keeps its first value, as Optuna's Trial.report does
    frames("report", study="s", number=second["number"], step=0, value=-5.0)
    told = frames("tell", study="s", number=second["number"], state="pruned")
    assert told == {"number": 1, "state": "pruned", "values": [5.0]}  # last intermediate value
    (pruned,) = frames("trials", study="s", states=["pruned"])["trials"]
    assert pruned["intermediate_values"] == {"0": 5.0}
    error = frames.error("report", study="s", number=1, step=1, value=0.0)
    assert error["data"]["kind"] == "trial_finished"
    assert frames.error("report", study="s", number=9, step=0, value=0.0)["data"]["kind"] == (
        "trial_not_found"
    )
    frames("create", study="mo", directions=["minimize", "maximize"], search_space=SPACE)
    (mo,) = frames("ask", study="mo")["trials"]
    assert (
        frames.error("report", study="mo", number=mo["number"], step=0, value=1.0)["data"]["kind"]
        == "invalid_params"
    )


def test_enqueue_order_partial_params_and_skip(frames: Frames) -> None:
    frames("create", study="s", sampler={"type": "random", "seed": 5}, search_space=SPACE)
    assert frames(
        "enqueue", study="s", params={"x": 0.5, "n": 2, "c": "b"}, user_attrs={"why": "baseline"}
    ) == {"enqueued": True}
    assert frames("enqueue", study="s", params={"x": -0.5}) == {"enqueued": True}
    assert frames(
        "enqueue", study="s", params={"x": 0.5, "n": 2, "c": "b"}, skip_if_exists=True
    ) == {"enqueued": False}
    asked = frames("ask", study="s", n=3)["trials"]
    assert asked[0] == {"number": 0, "params": {"x": 0.5, "n": 2, "c": "b"}}
    assert asked[1]["number"] == 1 and asked[1]["params"]["x"] == -0.5
    assert set(asked[1]["params"]) == {"x", "n", "c"}  # the sampler filled in the rest
    frames("tell", study="s", number=0, value=1.0)
    (first,) = frames("trials", study="s", states=["complete"])["trials"]
    assert first["user_attrs"] == {"why": "baseline"}
    for params, kind in [
        ({"x": 9.0}, "invalid_params"),
        ({"typo": 1}, "invalid_params"),
        ({"c": "z"}, "invalid_params"),
    ]:
        assert frames.error("enqueue", study="s", params=params)["data"]["kind"] == kind
    assert frames.error("enqueue", study="nope", params={})["data"]["kind"] == "study_not_found"


def test_set_attrs_on_study_and_trials(frames: Frames) -> None:
    frames("create", study="s", search_space=SPACE, user_attrs={"a": 1})
    assert frames("set_attrs", study="s", user_attrs={"b": [1, 2]}) == {}
    (trial,) = frames("ask", study="s")["trials"]
    assert frames("set_attrs", study="s", number=trial["number"], user_attrs={"gpu": 3}) == {}
    frames("tell", study="s", number=trial["number"], value=1.0, user_attrs={"epochs": 4})
    (told,) = frames("trials", study="s")["trials"]
    assert told["user_attrs"] == {"gpu": 3, "epochs": 4}
    snapshot = frames("export", study="s")["snapshot"]
    assert snapshot["body"]["user_attrs"] == {"a": 1, "b": [1, 2]}
    error = frames.error("set_attrs", study="s", number=0, user_attrs={"late": True})
    assert error["data"]["kind"] == "trial_finished"
    assert frames.error("set_attrs", study="s", number=5)["data"]["kind"] == "trial_not_found"


def test_multi_objective_pareto_front_matches_optuna(frames: Frames) -> None:
    frames(
        "create",
        study="mo",
        directions=["minimize", "minimize"],
        sampler={"type": "nsga2", "seed": 2, "population_size": 6},
        search_space=SPACE,
    )
    frames.optimize("mo", 30, n_objectives=2)
    front = frames("best", study="mo")["trials"]
    study = frames.endpoint.dispatcher.registry.get("mo").study
    expected = sorted(t.number for t in study.best_trials)
    assert sorted(t["number"] for t in front) == expected
    assert len(front) >= 2 and all(len(t["values"]) == 2 for t in front)
    assert frames.error("tell", study="mo", number=0, value=1.0)["data"]["kind"] in (
        "invalid_params",
        "trial_finished",
    )


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "nsga3", "random"])
def test_constraints_and_feasible_best(frames: Frames, sampler: str) -> None:
    frames("create", study="s", sampler={"type": sampler, "seed": 4}, search_space=SPACE)
    for _ in range(10):
        (trial,) = frames("ask", study="s")["trials"]
        x = trial["params"]["x"]
        # the objective prefers x = -3, but x <= 0 is infeasible
        frames("tell", study="s", number=trial["number"], value=x, constraints=[-x + 0.0001])
    (best,) = frames("best", study="s")["trials"]
    assert best["params"]["x"] > 0
    study = frames.endpoint.dispatcher.registry.get("s").study
    assert best["number"] == study.best_trial.number
    stored = study.trials[best["number"]]
    assert list(stored.constraints.values()) == [-best["params"]["x"] + 0.0001]


def test_best_with_no_feasible_trial(frames: Frames) -> None:
    frames("create", study="s", search_space=SPACE)
    (trial,) = frames("ask", study="s")["trials"]
    frames("tell", study="s", number=trial["number"], value=1.0, constraints=[1.0, -1.0])
    assert frames.error("best", study="s")["data"]["kind"] == "no_completed_trials"
    (trial,) = frames("ask", study="s")["trials"]
    assert (
        frames.error("tell", study="s", number=trial["number"], state="fail", constraints=[1.0])[
            "data"
        ]["field"]
        == "$.params.constraints"
    )


def test_importance(frames: Frames) -> None:
    frames("create", study="s", sampler={"type": "random", "seed": 8}, search_space=SPACE)
    error = frames.error("importance", study="s")
    assert error["data"] == {"kind": "no_completed_trials", "study": "s", "n_completed": 0}
    frames.optimize("s", 30)
    importances = frames("importance", study="s")["importances"]
    assert set(importances) == {"x", "n", "c"}
    assert abs(sum(importances.values()) - 1.0) < 1e-6
    expected = optuna.importance.get_param_importances(
        frames.endpoint.dispatcher.registry.get("s").study
    )
    assert importances == pytest.approx(dict(expected))
    assert list(frames("importance", study="s", params=["x"])["importances"]) == ["x"]
    assert frames.error("importance", study="s", params=["nope"])["data"]["kind"] == (
        "invalid_params"
    )

    frames(
        "create",
        study="mo",
        directions=["minimize", "maximize"],
        search_space=SPACE,
        sampler={"type": "random", "seed": 8},
    )
    frames.optimize("mo", 10, n_objectives=2)
    assert set(frames("importance", study="mo")["importances"]) == {"x", "n", "c"}
    mo = frames.endpoint.dispatcher.registry.get("mo").study
    # objective 1 is maximized: its importances are Optuna's for the negated value
    expected = optuna.importance.get_param_importances(mo, target=lambda t: -t.values[1])
    assert frames("importance", study="mo", objective=1)["importances"] == pytest.approx(
        dict(expected)
    )
    assert frames.error("importance", study="mo", objective=2)["data"]["field"] == (
        "$.params.objective"
    )


def test_define_by_run_ask_adds_parameters(frames: Frames) -> None:
    frames("create", study="s", sampler={"type": "tpe", "seed": 1}, search_space={"x": SPACE["x"]})
    (first,) = frames("ask", study="s")["trials"]
    assert set(first["params"]) == {"x"}
    (second,) = frames(
        "ask",
        study="s",
        search_space={"layers": {"type": "int", "low": 1, "high": 3}},
        fixed_params={"x": 0.25},
    )["trials"]
    assert second["params"]["x"] == 0.25 and 1 <= second["params"]["layers"] <= 3


@pytest.mark.parametrize(
    ("spec", "field", "allowed"),
    [
        ({"sampler": {"type": "tpe", "sed": 1}}, "$.params.sampler.sed", "seed"),
        (
            {"sampler": {"type": "cmaes", "sigma0": 0.3, "popsiz": 3}},
            "$.params.sampler.popsiz",
            "popsize",
        ),
        ({"sampler": {"type": "annealing"}}, "$.params.sampler.type", "tpe"),
        (
            {"sampler": {"type": "grid", "search_space": {"x": [0.0]}, "gamma": "lambda n: n"}},
            "$.params.sampler.gamma",
            "search_space",
        ),
        (
            {"pruner": {"type": "hyperband", "max_resourse": 8}},
            "$.params.pruner.max_resourse",
            "max_resource",
        ),
        (
            {
                "pruner": {
                    "type": "patient",
                    "patience": 1,
                    "wrapped_pruner": {"type": "nop", "x": 1},
                }
            },
            "$.params.pruner.wrapped_pruner.x",
            "type",
        ),
        ({"pruner": {"type": "magic"}}, "$.params.pruner.type", "wilcoxon"),
    ],
)
def test_unknown_options_list_the_allowed_ones(
    frames: Frames, spec: dict[str, Any], field: str, allowed: str
) -> None:
    error = frames.error("create", study="s", **spec)
    assert error["code"] == -32602
    assert error["data"]["field"] == field
    assert allowed in error["data"]["allowed"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"sampler": {"type": "tpe", "seed": -1}}, "$.params.sampler.seed"),
        (
            {"sampler": {"type": "tpe", "n_startup_trials": "ten"}},
            "$.params.sampler.n_startup_trials",
        ),
        ({"sampler": {"type": "nsga2", "crossover": "os.system"}}, "$.params.sampler.crossover"),
        ({"sampler": {"type": "nsga2", "mutation_prob": 1.5}}, "$.params.sampler.mutation_prob"),
        ({"sampler": {"type": "qmc", "qmc_type": "magic"}}, "$.params.sampler.qmc_type"),
        ({"sampler": {"type": "grid"}}, "$.params.sampler"),
        (
            {"sampler": {"type": "cmaes", "independent_sampler": {"type": "cmaes"}}},
            "$.params.sampler.independent_sampler.type",
        ),
        ({"pruner": {"type": "percentile"}}, "$.params.pruner"),
        ({"pruner": {"type": "percentile", "percentile": 101}}, "$.params.pruner.percentile"),
        (
            {"pruner": {"type": "successive_halving", "min_resource": "lots"}},
            "$.params.pruner.min_resource",
        ),
        ({"pruner": {"type": "wilcoxon", "p_threshold": 2}}, "$.params.pruner.p_threshold"),
        (
            {
                "pruner": {
                    "type": "patient",
                    "patience": 1,
                    "wrapped_pruner": {"type": "patient", "patience": 1},
                }
            },
            "$.params.pruner.wrapped_pruner.type",
        ),
        ({"sampler": {"type": "tpe", "multivariate": False, "group": True}}, "$.params.sampler"),
        ({"pruner": {"type": "threshold"}}, "$.params.pruner"),
        # options that would make Optuna allocate without bound (found by the fuzzer: one ask
        # with n_ei_candidates=1e8 grew the worker to 17 GB)
        (
            {"sampler": {"type": "tpe", "n_ei_candidates": 100_000_000}},
            "$.params.sampler.n_ei_candidates",
        ),
        ({"sampler": {"type": "cmaes", "popsize": 10**9}}, "$.params.sampler.popsize"),
        (
            {
                "sampler": {
                    "type": "grid",
                    "search_space": {f"p{i}": list(range(100)) for i in range(4)},
                }
            },
            "$.params.sampler.search_space",
        ),
    ],
)
def test_bad_option_values_name_the_field(frames: Frames, spec: dict[str, Any], field: str) -> None:
    error = frames.error("create", study="s", **spec)
    assert (error["code"], error["data"]["kind"]) == (-32602, "invalid_params")
    assert error["data"]["field"] == field
    assert frames("list")["studies"] == []


def test_nsga3_reference_points_must_fit(frames: Frames) -> None:
    directions = ["minimize"] * 16
    error = frames.error(
        "create",
        study="s",
        directions=directions,
        sampler={"type": "nsga3", "dividing_parameter": 30},
    )
    assert error["data"]["field"] == "$.params.sampler.dividing_parameter"
    error = frames.error(
        "create",
        study="s",
        directions=["minimize", "minimize"],
        sampler={"type": "nsga3", "reference_points": [[0.0, 1.0, 2.0]]},
    )
    assert error["data"]["field"] == "$.params.sampler.reference_points"
    frames(
        "create",
        study="s",
        directions=["minimize", "minimize"],
        sampler={"type": "nsga3", "seed": 1, "reference_points": [[0.0, 1.0], [1.0, 0.0]]},
        search_space=SPACE,
    )
    frames.optimize("s", 5, n_objectives=2)
