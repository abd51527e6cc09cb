"""The wire contract: one msgspec type for every request's params and every result.

Every frame is decoded into these types before any handler runs, so a handler only ever sees
validated values; the same types encode the replies and generate ``protocol/schema/*.json``
(``make schema``). Field names follow Optuna's vocabulary (``number``, ``params``, ``values``,
``direction``, ``state``) so an Optuna user recognises everything.

Sections: envelope, search space, samplers and pruners, per-method params and results.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

PROTOCOL_VERSION = 1

# --------------------------------------------------------------------------------------------
# Common shapes
# --------------------------------------------------------------------------------------------

RequestId = int | str
"""A request ``id``: an integer or a string, echoed in the reply."""

StudyName = Annotated[str, Meta(min_length=1, max_length=512, description="Study name")]
ParamName = Annotated[str, Meta(min_length=1, max_length=512)]
JsonScalar = str | int | float | bool | None
"""A categorical choice or a parameter value: anything JSON has that is not a container."""

UserAttrs = dict[str, Any]
"""Free-form JSON user attributes, stored as given (Optuna's ``user_attrs``)."""

Direction = Literal["minimize", "maximize"]
TrialStateName = Literal["running", "waiting", "complete", "pruned", "fail"]


class _Params(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every params struct: unknown fields are errors, never silently ignored."""


class _Spec(Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    """Base of the tagged unions chosen by a ``type`` field (distributions, samplers, pruners)."""


# --------------------------------------------------------------------------------------------
# Envelope (JSON-RPC 2.0 shaped)
# --------------------------------------------------------------------------------------------


class RequestEnvelope(Struct, forbid_unknown_fields=True):
    """A request or notification as it arrives; ``params`` stays raw until the method is known.

    ``jsonrpc`` may be omitted by people typing frames in a shell; if present it must be "2.0".
    A frame without ``id`` is a notification and gets no reply (unless it fails).
    """

    method: Annotated[str, Meta(max_length=128)]
    jsonrpc: Literal["2.0"] | UnsetType = UNSET
    id: RequestId | UnsetType = UNSET
    params: Raw | UnsetType = UNSET


class ErrorObject(Struct):
    code: int
    message: str
    data: dict[str, Any]


class ResultReply(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId | None
    result: Any


class ErrorReply(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId | None
    error: ErrorObject


class Notification(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    method: str
    params: Any


class ErrorNotificationParams(Struct):
    """Sent when a notification (a request without ``id``) fails, so casts never fail silently."""

    method: str | None
    error: ErrorObject


class ReadyParams(Struct):
    """The first frame a worker writes, before it reads anything."""

    protocol: int
    worker: str
    optuna: str
    pid: int
    storage: str
    framing: Literal["line", "packet4"]


# --------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------


class FloatDistributionSpec(_Spec, tag="float"):
    low: float
    high: float
    log: bool = False
    step: float | None = None


class IntDistributionSpec(_Spec, tag="int"):
    low: int
    high: int
    log: bool = False
    step: int = 1


class CategoricalDistributionSpec(_Spec, tag="categorical"):
    choices: list[JsonScalar]


DistributionSpec = FloatDistributionSpec | IntDistributionSpec | CategoricalDistributionSpec
SearchSpace = dict[ParamName, DistributionSpec]


# --------------------------------------------------------------------------------------------
# Samplers and pruners: one struct per ``type``; the fields are the constructor's options.
# An option left out keeps Optuna's own default (UNSET is never passed to the constructor).
# --------------------------------------------------------------------------------------------

Seed = Annotated[int, Meta(ge=0, le=2**32 - 1)]


class RandomSamplerSpec(_Spec, tag="random"):
    seed: Seed | UnsetType = UNSET


class TPESamplerSpec(_Spec, tag="tpe"):
    seed: Seed | UnsetType = UNSET
    n_startup_trials: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    n_ei_candidates: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    multivariate: bool | UnsetType = UNSET
    group: bool | UnsetType = UNSET
    constant_liar: bool | UnsetType = UNSET
    prior_weight: Annotated[float, Meta(gt=0)] | UnsetType = UNSET
    consider_magic_clip: bool | UnsetType = UNSET
    consider_endpoints: bool | UnsetType = UNSET
    warn_independent_sampling: bool | UnsetType = UNSET


SamplerSpec = RandomSamplerSpec | TPESamplerSpec


class NopPrunerSpec(_Spec, tag="nop"):
    pass


class MedianPrunerSpec(_Spec, tag="median"):
    n_startup_trials: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    n_warmup_steps: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    interval_steps: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    n_min_trials: Annotated[int, Meta(ge=1)] | UnsetType = UNSET


PrunerSpec = NopPrunerSpec | MedianPrunerSpec


class StudyConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    """What a study was created with beyond its directions, stored with the study in its storage
    (a study system attr) so any worker, restarted or not, rebuilds the same sampler, pruner and
    search space from the study's name alone."""

    sampler: SamplerSpec | None = None
    pruner: PrunerSpec | None = None
    search_space: SearchSpace = {}


# --------------------------------------------------------------------------------------------
# Trials as the parent sees them
# --------------------------------------------------------------------------------------------


class AskedTrial(Struct):
    number: int
    params: dict[str, JsonScalar]


class TrialInfo(Struct, omit_defaults=True):
    """A trial in replies of ``best``, ``trials`` and friends.

    ``intermediate_values`` is keyed by step (a JSON object, so keys are strings on the wire).
    Datetimes are left out unless asked for, so a seeded conversation replays byte-identically.
    """

    number: int
    state: TrialStateName
    params: dict[str, JsonScalar]
    values: list[float] | None
    user_attrs: UserAttrs
    intermediate_values: dict[int, float] = {}
    datetime_start: str | UnsetType | None = UNSET
    datetime_complete: str | UnsetType | None = UNSET


# --------------------------------------------------------------------------------------------
# Methods: params and results
# --------------------------------------------------------------------------------------------


class PingParams(_Params):
    pass


class PingResult(Struct):
    pong: bool = True


class CreateParams(_Params):
    study: StudyName
    direction: Direction | UnsetType = UNSET
    directions: Annotated[list[Direction], Meta(min_length=1, max_length=16)] | UnsetType = UNSET
    sampler: SamplerSpec | UnsetType = UNSET
    pruner: PrunerSpec | UnsetType = UNSET
    search_space: SearchSpace = {}
    load_if_exists: bool = False
    user_attrs: UserAttrs = {}


class CreateResult(Struct):
    study: str
    directions: list[Direction]
    created: bool
    n_trials: int
    n_running: int
    """Trials still running: asked by a parent that has not told them (maybe a dead one)."""


class AskParams(_Params):
    study: StudyName
    n: Annotated[int, Meta(ge=1, le=1000)] = 1
    search_space: SearchSpace | UnsetType = UNSET
    fixed_params: dict[ParamName, JsonScalar] = {}


class AskResult(Struct):
    trials: list[AskedTrial]


class TellParams(_Params):
    study: StudyName
    number: Annotated[int, Meta(ge=0)]
    value: float | UnsetType = UNSET
    values: Annotated[list[float], Meta(min_length=1, max_length=16)] | UnsetType = UNSET
    state: Literal["complete", "pruned", "fail"] = "complete"
    skip_if_finished: bool = False
    user_attrs: UserAttrs = {}


class TellResult(Struct):
    number: int
    state: TrialStateName
    values: list[float] | None


class BestParams(_Params):
    study: StudyName
    datetimes: bool = False


class TrialsParams(_Params):
    study: StudyName
    states: list[TrialStateName] | UnsetType = UNSET
    datetimes: bool = False


class TrialsResult(Struct):
    trials: list[TrialInfo]


class ListParams(_Params):
    pass


class StudySummary(Struct):
    study: str
    directions: list[Direction]
    n_trials: int
    n_running: int


class ListResult(Struct):
    studies: list[StudySummary]


class DeleteParams(_Params):
    study: StudyName


class DeleteResult(Struct):
    study: str
    deleted: bool = True


class ExportParams(_Params):
    study: StudyName


class ExportResult(Struct):
    snapshot: Raw
    """A :class:`Snapshot`, already in its canonical encoding (sorted keys)."""


class ImportParams(_Params):
    snapshot: Raw
    """A :class:`Snapshot` exactly as ``export`` returned it."""
    study: StudyName | UnsetType = UNSET
    """Import under this name instead of the snapshot's."""
    overwrite: bool = False
    """Replace a study of the same name (otherwise ``study_exists``)."""


class ImportResult(Struct):
    study: str
    n_trials: int


class ShutdownParams(_Params):
    pass


class ShutdownResult(Struct):
    pass


# --------------------------------------------------------------------------------------------
# Snapshots (``export`` / ``import``): a study as a self-describing, checksummed JSON document
# --------------------------------------------------------------------------------------------

SNAPSHOT_FORMAT = "optuna-bridge.snapshot"
SNAPSHOT_VERSION = 1


class SnapshotTrial(Struct, forbid_unknown_fields=True, kw_only=True):
    number: Annotated[int, Meta(ge=0)]
    state: TrialStateName
    params: dict[str, JsonScalar]
    distributions: dict[str, DistributionSpec]
    values: list[float] | None
    intermediate_values: dict[int, float]
    user_attrs: UserAttrs
    system_attrs: UserAttrs
    """Optuna's own per-trial bookkeeping (fixed params, constraints, retry history, ...)."""
    datetime_start: str | None
    datetime_complete: str | None


class SnapshotBody(Struct, forbid_unknown_fields=True, kw_only=True):
    study: StudyName
    directions: Annotated[list[Direction], Meta(min_length=1, max_length=16)]
    config: StudyConfig
    user_attrs: UserAttrs
    system_attrs: UserAttrs
    trials: list[SnapshotTrial]


class Snapshot(Struct, forbid_unknown_fields=True, kw_only=True):
    """``checksum`` is ``sha256:<hex>`` of the body's canonical JSON (sorted keys, no spaces,
    shortest round-trip floats): the bytes ``body`` has inside an exported snapshot."""

    format: Literal["optuna-bridge.snapshot"]
    version: int
    checksum: str
    body: SnapshotBody


# --------------------------------------------------------------------------------------------
# Codec objects, built once and reused for every frame
# --------------------------------------------------------------------------------------------

envelope_decoder = msgspec.json.Decoder(RequestEnvelope)
batch_decoder = msgspec.json.Decoder(list[Raw])
encoder = msgspec.json.Encoder()
