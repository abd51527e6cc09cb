"""Resolved sampler and pruner options (:mod:`bridge_worker.studies.resolved`): a study keeps the
sampler it was created with across Optuna upgrades, restarts and imports."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import optuna
import pytest

from bridge_worker.client import Worker
from bridge_worker.storage.options import StorageOptions
from bridge_worker.studies.registry import CONFIG_ATTR, StudyRegistry
from bridge_worker.studies.resolved import resolve_config
from bridge_worker.studies.samplers import build_pruner, build_sampler
from bridge_worker.wire.schema import StudyConfig

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}

SAMPLERS = [
    ({"type": "random"}, 1),
    ({"type": "tpe"}, 1),
    ({"type": "tpe"}, 2),
    ({"type": "cmaes"}, 1),
    ({"type": "nsga2"}, 2),
    ({"type": "nsga3"}, 3),
    ({"type": "qmc"}, 1),
    ({"type": "grid", "search_space": {"x": [0.5]}}, 1),
    ({"type": "bruteforce"}, 1),
]
PRUNERS = [
    {"type": "nop"},
    {"type": "median"},
    {"type": "percentile", "percentile": 30},
    {"type": "successive_halving"},
    {"type": "hyperband"},
    {"type": "threshold", "upper": 3},
    {"type": "wilcoxon"},
    {"type": "patient", "patience": 2, "wrapped_pruner": {"type": "median"}},
]


def _resolve(raw: dict[str, Any], n_objectives: int = 1) -> StudyConfig:
    config = msgspec.convert(raw, StudyConfig)
    return resolve_config(config, n_objectives, build_sampler, build_pruner)


@pytest.mark.parametrize(("sampler", "n_objectives"), SAMPLERS)
@pytest.mark.parametrize("pruner", PRUNERS, ids=lambda p: p["type"])
def test_every_sampler_and_pruner_resolves_to_options_that_rebuild_it(
    sampler: dict[str, Any], n_objectives: int, pruner: dict[str, Any]
) -> None:
    resolved = _resolve({"sampler": sampler, "pruner": pruner}, n_objectives)
    assert resolved.optuna_version == optuna.__version__
    stored = msgspec.convert(msgspec.to_builtins(resolved), StudyConfig)  # as the storage has it
    assert stored == resolved
    assert resolve_config(stored, n_objectives, build_sampler, build_pruner) is stored
    build_sampler(stored.sampler)
    build_pruner(stored.pruner)
    given = msgspec.to_builtins(msgspec.convert({"sampler": sampler}, StudyConfig).sampler)
    assert msgspec.to_builtins(stored.sampler).items() >= given.items()


def test_the_defaults_that_optuna_5_changed_are_written_down() -> None:
    one = _resolve({})
    assert msgspec.to_builtins(one.sampler) == {
        "type": "tpe",
        "n_startup_trials": 10,
        "n_ei_candidates": 24,
        "multivariate": True,
        "group": False,
        "constant_liar": True,
    }
    assert msgspec.to_builtins(one.pruner) == {
        "type": "median",
        "n_startup_trials": 5,
        "n_warmup_steps": 0,
        "interval_steps": 1,
        "n_min_trials": 1,
    }
    two = _resolve({}, n_objectives=2)
    assert msgspec.to_builtins(two.sampler)["multivariate"] is False  # independent TPE
    seeded = _resolve({"sampler": {"type": "tpe", "seed": 3, "constant_liar": False}})
    assert msgspec.to_builtins(seeded.sampler)["seed"] == 3
    assert msgspec.to_builtins(seeded.sampler)["constant_liar"] is False
    assert "seed" not in msgspec.to_builtins(one.sampler)  # unseeded stays unseeded


def test_export_shows_the_resolved_options_and_list_best_keep_their_shapes(
    worker: Worker,
) -> None:
    created = worker.call("create", {"study": "s", "search_space": SPACE})
    assert set(created) == {"study", "directions", "created", "n_trials", "n_running"}
    (trial,) = worker.ask("s")
    worker.tell("s", trial.number, 0.5)
    assert set(worker.call("list")["studies"][0]) == {
        "study",
        "directions",
        "n_trials",
        "n_running",
    }
    assert set(worker.call("best", {"study": "s"})) == {"trials"}
    config = worker.export("s")["body"]["config"]
    assert config["optuna_version"] == optuna.__version__
    assert config["sampler"]["multivariate"] is True and config["pruner"]["type"] == "median"


def _write_config(url: str, study: str, config: dict[str, Any]) -> None:
    storage = optuna.storages.get_storage(url)
    study_id = storage.get_study_id_from_name(study)
    storage.set_study_system_attr(study_id, CONFIG_ATTR, config)


def test_a_study_stored_before_resolution_is_resolved_on_first_load_and_logged(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Worker.spawn(storage=url) as worker:
        worker.create("old", search_space=SPACE, sampler={"type": "random", "seed": 1})
    old_format = {"sampler": {"type": "random", "seed": 1}, "pruner": None, "search_space": SPACE}
    _write_config(url, "old", old_format)
    log = tmp_path / "stderr.log"
    with log.open("wb") as err, Worker.spawn(storage=url, log_level="info", stderr=err) as worker:
        assert worker.ask("old")[0].number == 0
        config = worker.export("old")["body"]["config"]
    assert config["optuna_version"] == optuna.__version__
    assert config["pruner"]["type"] == "median"
    assert b'"study_config_resolved"' in log.read_bytes()
    stored = optuna.storages.get_storage(url).get_study_system_attrs(
        optuna.storages.get_storage(url).get_study_id_from_name("old")
    )[CONFIG_ATTR]
    assert stored["optuna_version"] == optuna.__version__  # written back once


def test_options_resolved_by_an_older_optuna_win_over_new_defaults(tmp_path: Path) -> None:
    """What an upgrade looks like: the stored options (TPE 4.x defaults, independent and without
    constant liar) are what the study is rebuilt with, not this Optuna's defaults."""
    url = f"sqlite:///{tmp_path / 'up.db'}"
    with Worker.spawn(storage=url) as worker:
        worker.create("up", search_space=SPACE)
    _write_config(
        url,
        "up",
        {
            "sampler": {
                "type": "tpe",
                "multivariate": False,
                "constant_liar": False,
                "n_startup_trials": 10,
                "n_ei_candidates": 24,
                "group": False,
            },
            "pruner": {"type": "median"},
            "search_space": SPACE,
            "optuna_version": "4.5.0",
        },
    )
    registry = StudyRegistry(StorageOptions(url=url))
    try:
        sampler = registry.get("up").study.sampler
        assert isinstance(sampler, optuna.samplers.TPESampler)
        assert sampler._multivariate is False and sampler._constant_liar is False
        assert registry.get("up").config.optuna_version == "4.5.0"
    finally:
        registry.close()


def test_an_old_snapshot_is_resolved_on_import(worker: Worker) -> None:
    worker.create("s", search_space=SPACE)
    snapshot = worker.export("s")
    body = snapshot["body"]
    body["config"] = {"sampler": {"type": "random"}, "pruner": None, "search_space": SPACE}
    canonical = msgspec.json.encode(body, order="sorted")
    snapshot["checksum"] = "sha256:" + hashlib.sha256(canonical).hexdigest()
    worker.import_(snapshot, study="copy")
    config = worker.export("copy")["body"]["config"]
    assert config["optuna_version"] == optuna.__version__
    assert config["sampler"] == {"type": "random"} and config["pruner"]["type"] == "median"
