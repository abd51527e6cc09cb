"""Methods that create, list and delete studies."""

from __future__ import annotations

from msgspec import UNSET

from bridge_worker.dispatch import rpc_method
from bridge_worker.errors import invalid_params
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema import (
    CreateParams,
    CreateResult,
    DeleteParams,
    DeleteResult,
    Direction,
    ListParams,
    ListResult,
    StudyConfig,
    StudySummary,
)


@rpc_method("create")
def create(registry: StudyRegistry, params: CreateParams) -> CreateResult:
    config = StudyConfig(
        sampler=None if params.sampler is UNSET else params.sampler,
        pruner=None if params.pruner is UNSET else params.pruner,
        search_space=params.search_space,
    )
    entry, created = registry.create(
        params.study,
        _directions(params),
        config,
        params.user_attrs,
        params.load_if_exists,
    )
    status = registry.summary(entry)
    return CreateResult(
        study=entry.name,
        directions=entry.directions,
        created=created,
        n_trials=status.n_trials,
        n_running=status.n_running,
    )


@rpc_method("list")
def list_studies(registry: StudyRegistry, params: ListParams) -> ListResult:
    return ListResult(
        studies=[
            StudySummary(
                study=s.name, directions=s.directions, n_trials=s.n_trials, n_running=s.n_running
            )
            for s in registry.summaries()
        ]
    )


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
