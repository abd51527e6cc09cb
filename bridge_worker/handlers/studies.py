"""Methods that create, list and delete studies."""

from __future__ import annotations

from msgspec import UNSET

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.stopping import check_rules
from bridge_worker.studies.study import StudyEntry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import invalid_params
from bridge_worker.wire.schema import (
    CreateParams,
    CreateResult,
    DeleteParams,
    DeleteResult,
    Direction,
    ListParams,
    ListResult,
    StudyConfig,
)


@rpc_method("create")
def create(registry: StudyRegistry, params: CreateParams) -> CreateResult:
    config = StudyConfig(
        sampler=None if params.sampler is UNSET else params.sampler,
        pruner=None if params.pruner is UNSET else params.pruner,
        search_space=params.search_space,
        stop=params.stop,
    )
    directions = _directions(params)
    if params.stop is not UNSET:
        check_rules(params.stop, len(directions), "$.params.stop")
    if params.metric_names is not UNSET and len(params.metric_names) != len(directions):
        raise invalid_params(
            "$.params.metric_names",
            f"one metric name per objective: {len(directions)} objective(s), "
            f"got {len(params.metric_names)} name(s)",
        )
    if params.metric_names is not UNSET:
        _check_distinct(params.metric_names)
    entry, created = registry.create(
        params.study,
        directions,
        config,
        params.user_attrs,
        params.load_if_exists,
    )
    if params.metric_names is not UNSET:
        _name_metrics(entry, params.metric_names, created)
    status = registry.summary(entry)
    return CreateResult(
        study=entry.name,
        directions=entry.directions,
        created=created,
        n_trials=status.n_trials,
        n_running=status.n_running,
        metric_names=status.metric_names,
    )


def _check_distinct(names: list[str]) -> None:
    """Figures and readers tell the objectives apart by name: two with one name cannot be."""
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise invalid_params(
                f"$.params.metric_names[{index}]",
                f"metric name {name!r} is already the name of objective {seen[name]}: "
                "each objective needs its own name",
            )
        seen[name] = index


def _name_metrics(entry: StudyEntry, names: list[str], created: bool) -> None:
    """Optuna's ``set_metric_names``. A study that already existed keeps the names it has
    (as its other settings win); one without names takes the request's, if they fit."""
    if not created and entry.metric_names() is not None:
        return
    if len(names) != entry.n_objectives:
        return  # an existing study with another number of objectives: its own settings win
    entry.set_metric_names(names)


@rpc_method("list", reads_only=True)
def list_studies(registry: StudyRegistry, params: ListParams) -> ListResult:
    return ListResult(studies=registry.summaries())


@rpc_method("delete")
def delete(registry: StudyRegistry, params: DeleteParams) -> DeleteResult:
    registry.delete(params.study)
    return DeleteResult(study=params.study)


def _directions(params: CreateParams) -> list[Direction]:
    if params.direction is not UNSET and params.directions is not UNSET:
        raise invalid_params("$.params.directions", "give direction or directions, not both")
    if params.directions is not UNSET:
        return params.directions
    if params.direction is not UNSET:
        return [params.direction]
    return ["minimize"]
