"""The wire contract: one msgspec type for every request's params and every result.

Every frame is decoded into these types before any handler runs, so a handler only ever sees
validated values; the same types encode the replies and generate ``protocol/schema/*.json``
(``make schema``). Field names follow Optuna's vocabulary (``number``, ``params``, ``values``,
``direction``, ``state``) so an Optuna user recognises everything.

Sections: envelope, search space, samplers and pruners, per-method params and results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

PROTOCOL_VERSION = 1

# --------------------------------------------------------------------------------------------
# Common shapes
# --------------------------------------------------------------------------------------------

RequestId = int | str
"""A request ``id`` as this project's clients write it: an integer or a string."""

WireIdBytes = Annotated[Raw, Meta(extra_json_schema={"type": ["string", "number", "null"]})]
"""An ``id`` as it arrives and as a reply carries it: JSON-RPC allows any string, number or null,
and the worker echoes the request's own bytes (``1e2`` stays ``1e2``), so any caller can match
its reply."""
WireId = WireIdBytes | None
ParamsBytes = Annotated[Raw, Meta(extra_json_schema={"type": ["object", "array"]})]
"""``params`` as it arrives: an object (by name), or ``[]`` for none."""

StudyName = Annotated[str, Meta(min_length=1, max_length=512, description="Study name")]
ParamName = Annotated[str, Meta(min_length=1, max_length=512)]
JsonScalar = str | int | float | bool | None
"""A categorical choice or a parameter value: anything JSON has that is not a container."""

UserAttrs = dict[str, Any]
"""Free-form JSON user attributes, stored as given (Optuna's ``user_attrs``)."""

Direction = Literal["minimize", "maximize"]
MetricName = Annotated[str, Meta(min_length=1, max_length=512)]
MetricNames = Annotated[list[MetricName], Meta(min_length=1, max_length=16)]
"""One name per objective (Optuna's ``set_metric_names``); figures use them as axis titles."""
LeaseSeconds = Annotated[float, Meta(gt=0, le=2_592_000)]
"""Seconds a trial may go without ``tell``, ``report`` or ``renew`` (at most 30 days)."""
TrialStateName = Literal["running", "waiting", "complete", "pruned", "fail"]


class _Params(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every params struct: unknown fields are errors, never silently ignored."""


class _Spec(Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    """Base of the tagged unions chosen by a ``type`` field (distributions, samplers, pruners)."""


# --------------------------------------------------------------------------------------------
# Envelope (JSON-RPC 2.0 shaped)
# --------------------------------------------------------------------------------------------


class RequestEnvelope(Struct):
    """A request or notification as it arrives; ``params`` and ``id`` stay raw (checked by the
    endpoint: ``params`` an object, ``id`` a string, number or null, echoed byte for byte).

    ``jsonrpc`` may be omitted by people typing frames in a shell; if present it must be "2.0"
    (required with ``--jsonrpc strict``). A frame without ``id`` is a notification and gets no
    reply (unless it fails). Unknown top-level members are ignored, as JSON-RPC allows; unknown
    fields inside ``params`` are errors.
    """

    method: Annotated[str, Meta(max_length=128)]
    jsonrpc: Literal["2.0"] | UnsetType = UNSET
    id: WireIdBytes | UnsetType = UNSET
    params: ParamsBytes | UnsetType = UNSET


class ErrorObject(Struct):
    code: int
    message: str
    data: dict[str, Any]


class ResultReply(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: WireId
    result: Any


class ErrorReply(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: WireId
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
    max_frame_bytes: int
    """The worker's ``--max-frame-bytes``: a parent can refuse a longer frame before writing it."""


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
NonNegative = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]
Probability = Annotated[float, Meta(ge=0, le=1)]


class RandomSamplerSpec(_Spec, tag="random"):
    seed: Seed | UnsetType = UNSET


class TPESamplerSpec(_Spec, tag="tpe"):
    seed: Seed | UnsetType = UNSET
    n_startup_trials: NonNegative | UnsetType = UNSET
    n_ei_candidates: Annotated[int, Meta(ge=1, le=10_000)] | UnsetType = UNSET
    multivariate: bool | UnsetType = UNSET
    group: bool | UnsetType = UNSET
    constant_liar: bool | UnsetType = UNSET
    prior_weight: Annotated[float, Meta(gt=0)] | UnsetType = UNSET
    consider_magic_clip: bool | UnsetType = UNSET
    consider_endpoints: bool | UnsetType = UNSET
    warn_independent_sampling: bool | UnsetType = UNSET


IndependentSamplerSpec = RandomSamplerSpec | TPESamplerSpec
"""Samplers that may sample what a relative sampler (cmaes, gp, qmc) cannot."""


class CmaEsSamplerSpec(_Spec, tag="cmaes"):
    seed: Seed | UnsetType = UNSET
    x0: dict[ParamName, JsonScalar] | UnsetType = UNSET
    sigma0: Annotated[float, Meta(gt=0)] | UnsetType = UNSET
    n_startup_trials: NonNegative | UnsetType = UNSET
    independent_sampler: IndependentSamplerSpec | UnsetType = UNSET
    warn_independent_sampling: bool | UnsetType = UNSET
    consider_pruned_trials: bool | UnsetType = UNSET
    restart_strategy: Literal["ipop", "bipop"] | UnsetType = UNSET
    popsize: Annotated[int, Meta(ge=1, le=10_000)] | UnsetType = UNSET
    inc_popsize: Annotated[int, Meta(ge=-1, le=16)] | UnsetType = UNSET
    use_separable_cma: bool | UnsetType = UNSET
    with_margin: bool | UnsetType = UNSET
    lr_adapt: bool | UnsetType = UNSET


class GPSamplerSpec(_Spec, tag="gp"):
    seed: Seed | UnsetType = UNSET
    independent_sampler: IndependentSamplerSpec | UnsetType = UNSET
    n_startup_trials: NonNegative | UnsetType = UNSET
    deterministic_objective: bool | UnsetType = UNSET
    warn_independent_sampling: bool | UnsetType = UNSET


Crossover = Literal["uniform", "blxalpha", "sbx", "spx", "undx", "vsbx"]
"""Optuna's NSGA crossovers by name, each with its default settings."""


class NSGAIISamplerSpec(_Spec, tag="nsga2"):
    seed: Seed | UnsetType = UNSET
    population_size: Annotated[int, Meta(ge=2, le=100_000)] | UnsetType = UNSET
    mutation_prob: Probability | UnsetType = UNSET
    crossover: Crossover | UnsetType = UNSET
    crossover_prob: Probability | UnsetType = UNSET
    swapping_prob: Probability | UnsetType = UNSET


class NSGAIIISamplerSpec(NSGAIISamplerSpec, tag="nsga3"):
    """NSGA-II's options plus the reference points of NSGA-III."""

    reference_points: Annotated[list[list[float]], Meta(max_length=10_000)] | UnsetType = UNSET
    dividing_parameter: Annotated[int, Meta(ge=1, le=64)] | UnsetType = UNSET


class QMCSamplerSpec(_Spec, tag="qmc"):
    seed: Seed | UnsetType = UNSET
    qmc_type: Literal["sobol", "halton", "lhs", "orthogonal_lhs"] | UnsetType = UNSET
    scramble: bool | UnsetType = UNSET
    independent_sampler: IndependentSamplerSpec | UnsetType = UNSET
    warn_asynchronous_seeding: bool | UnsetType = UNSET
    warn_independent_sampling: bool | UnsetType = UNSET


class GridSamplerSpec(_Spec, tag="grid"):
    search_space: Annotated[
        dict[ParamName, Annotated[list[JsonScalar], Meta(min_length=1)]], Meta(min_length=1)
    ]
    """Every value to try for each parameter; the grid is their product."""
    seed: Seed | UnsetType = UNSET


class BruteForceSamplerSpec(_Spec, tag="bruteforce"):
    seed: Seed | UnsetType = UNSET
    avoid_premature_stop: bool | UnsetType = UNSET


SamplerSpec = (
    RandomSamplerSpec
    | TPESamplerSpec
    | CmaEsSamplerSpec
    | GPSamplerSpec
    | NSGAIISamplerSpec
    | NSGAIIISamplerSpec
    | QMCSamplerSpec
    | GridSamplerSpec
    | BruteForceSamplerSpec
)


class NopPrunerSpec(_Spec, tag="nop"):
    pass


class MedianPrunerSpec(_Spec, tag="median"):
    n_startup_trials: NonNegative | UnsetType = UNSET
    n_warmup_steps: NonNegative | UnsetType = UNSET
    interval_steps: Positive | UnsetType = UNSET
    n_min_trials: Positive | UnsetType = UNSET


class PercentilePrunerSpec(MedianPrunerSpec, tag="percentile", kw_only=True):
    """The median pruner's options with another percentile than the 50th."""

    percentile: Annotated[float, Meta(ge=0, le=100)]


class SuccessiveHalvingPrunerSpec(_Spec, tag="successive_halving"):
    min_resource: Positive | Literal["auto"] | UnsetType = UNSET
    reduction_factor: Annotated[int, Meta(ge=2)] | UnsetType = UNSET
    min_early_stopping_rate: NonNegative | UnsetType = UNSET
    bootstrap_count: NonNegative | UnsetType = UNSET


class HyperbandPrunerSpec(_Spec, tag="hyperband"):
    min_resource: Positive | UnsetType = UNSET
    max_resource: Positive | Literal["auto"] | UnsetType = UNSET
    reduction_factor: Annotated[int, Meta(ge=2)] | UnsetType = UNSET
    bootstrap_count: NonNegative | UnsetType = UNSET


class ThresholdPrunerSpec(_Spec, tag="threshold"):
    lower: float | UnsetType = UNSET
    upper: float | UnsetType = UNSET
    n_warmup_steps: NonNegative | UnsetType = UNSET
    interval_steps: Positive | UnsetType = UNSET


class WilcoxonPrunerSpec(_Spec, tag="wilcoxon"):
    p_threshold: Probability | UnsetType = UNSET
    n_startup_steps: NonNegative | UnsetType = UNSET


class PatientPrunerSpec(_Spec, tag="patient"):
    """Waits ``patience`` steps without improvement before asking the wrapped pruner."""

    patience: NonNegative
    wrapped_pruner: WrappablePrunerSpec | None = None
    min_delta: Annotated[float, Meta(ge=0)] | UnsetType = UNSET


WrappablePrunerSpec = (
    NopPrunerSpec
    | MedianPrunerSpec
    | PercentilePrunerSpec
    | SuccessiveHalvingPrunerSpec
    | HyperbandPrunerSpec
    | ThresholdPrunerSpec
    | WilcoxonPrunerSpec
)
PrunerSpec = WrappablePrunerSpec | PatientPrunerSpec


class StopRules(Struct, forbid_unknown_fields=True, kw_only=True):
    """When a single-objective study is done (any subset; the first rule that holds stops it)."""

    target: float | UnsetType = UNSET
    """Stop once the best value is <= target (minimize) or >= target (maximize)."""
    patience: Annotated[int, Meta(ge=1, le=1_000_000)] | UnsetType = UNSET
    """Stop after this many completed trials in a row (in completion order) that did not improve
    the best value by more than ``min_delta``."""
    min_delta: Annotated[float, Meta(ge=0)] = 0.0
    max_trials: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    """Stop once this many trials are complete or pruned."""
    max_seconds: Annotated[float, Meta(gt=0)] | UnsetType = UNSET
    """Stop this many seconds after the study's first trial started."""


class Stopped(Struct):
    """Why a study is stopped: the rule that holds and what made it hold."""

    rule: Literal["target", "patience", "max_trials", "max_seconds"]
    detail: dict[str, Any]


class StudyConfig(Struct, forbid_unknown_fields=True, kw_only=True):
    """What a study was created with beyond its directions, stored with the study in its storage
    (a study system attr) so any worker, restarted or not, rebuilds the same sampler, pruner and
    search space from the study's name alone."""

    sampler: SamplerSpec | None = None
    pruner: PrunerSpec | None = None
    search_space: SearchSpace = {}
    stop: StopRules | UnsetType = UNSET
    """The study's stop rules, when it has any (``create`` / ``set_stop``)."""
    optuna_version: str | UnsetType = UNSET
    """The Optuna version that resolved ``sampler`` and ``pruner`` (every option given, defaults
    filled in; :mod:`bridge_worker.studies.resolved`), so a newer Optuna rebuilds the same ones."""


# --------------------------------------------------------------------------------------------
# Trials as the parent sees them
# --------------------------------------------------------------------------------------------


class AskedTrial(Struct):
    number: int
    params: dict[str, JsonScalar]
    lease_end: str | UnsetType = UNSET
    """When the trial's lease ends (ISO 8601, UTC); only for trials asked with ``lease_s``."""
    resumed: bool | UnsetType = UNSET
    """True for a trial the asking ``client`` started earlier and never told (handed out again,
    same number and params); absent for a new trial."""


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
    lease_end: str | UnsetType = UNSET
    """A running trial asked with ``lease_s``: when its lease ends (ISO 8601, UTC)."""
    client: str | UnsetType = UNSET
    """The ``client`` that asked the trial, when it was asked with one."""


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
    metric_names: MetricNames | UnsetType = UNSET
    """One name per objective (Optuna's ``set_metric_names``)."""
    stop: StopRules | UnsetType = UNSET
    """Stop rules (single-objective studies only); stored with the study."""


class CreateResult(Struct, omit_defaults=True):
    study: str
    directions: list[Direction]
    created: bool
    n_trials: int
    n_running: int
    """Trials still running: asked by a parent that has not told them (maybe a dead one)."""
    metric_names: list[str] | None = None
    """The study's metric names, when it has any (left out otherwise)."""


class AskParams(_Params):
    study: StudyName
    n: Annotated[int, Meta(ge=1, le=1000)] = 1
    search_space: SearchSpace | UnsetType = UNSET
    fixed_params: dict[ParamName, JsonScalar] = {}
    lease_s: LeaseSeconds | UnsetType = UNSET
    """Fail each asked trial unless it is told, reported or renewed within this many seconds."""
    retry: Annotated[int, Meta(ge=0, le=100)] = 0
    """With ``lease_s``: how many times a trial whose lease ran out is asked again (its
    parameters are enqueued; every worker on the storage may serve them)."""
    client: Annotated[str, Meta(min_length=1, max_length=128)] | UnsetType = UNSET
    """The asking client's id, stored with each trial: the client's RUNNING trials it never told
    are handed out again first (``resumed``), e.g. to a restarted parent."""


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
    constraints: Annotated[list[float], Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    """Constraint values of a complete or pruned trial: feasible when all are <= 0."""


class TellResult(Struct):
    number: int
    state: TrialStateName
    values: list[float] | None
    stopped: Stopped | UnsetType = UNSET
    """Present once a stop rule of the study holds."""


class BestParams(_Params):
    study: StudyName
    datetimes: bool = False


class TrialsParams(_Params):
    study: StudyName
    states: list[TrialStateName] | UnsetType = UNSET
    datetimes: bool = False
    offset: NonNegative = 0
    """Skip this many trials (of those ``states`` selects, in trial-number order)."""
    limit: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    """Return at most this many trials: with ``offset``, one page of a large study."""


class TrialsResult(Struct, omit_defaults=True):
    trials: list[TrialInfo]
    metric_names: list[str] | None = None
    """The study's metric names, when it has any (left out otherwise)."""
    stopped: Stopped | None = None
    """``best`` only: why the study is stopped, when a stop rule holds (left out otherwise)."""


class ListParams(_Params):
    pass


class StudySummary(Struct, omit_defaults=True):
    study: str
    directions: list[Direction]
    n_trials: int
    n_running: int
    metric_names: list[str] | None = None
    """The study's metric names, when it has any (left out otherwise)."""
    stopped: Stopped | None = None
    """Why the study is stopped, when a stop rule holds (left out otherwise)."""


class ListResult(Struct):
    studies: list[StudySummary]


class DeleteParams(_Params):
    study: StudyName


class DeleteResult(Struct):
    study: str
    deleted: bool = True


class ReportParams(_Params):
    study: StudyName
    number: Annotated[int, Meta(ge=0)]
    step: Annotated[int, Meta(ge=0)]
    value: float


class ReportResult(Struct):
    should_prune: bool


class EnqueueParams(_Params):
    study: StudyName
    params: dict[ParamName, JsonScalar] = {}
    """Some or all parameters of the next asked trial; the sampler fills in the rest."""
    user_attrs: UserAttrs = {}
    skip_if_exists: bool = False
    """Do nothing if a trial with exactly these params was already enqueued or run."""


class EnqueueResult(Struct):
    enqueued: bool


class SetAttrsParams(_Params):
    study: StudyName
    number: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    """The trial whose attrs to set; without it, the study's."""
    user_attrs: UserAttrs = {}


class SetAttrsResult(Struct):
    pass


class ImportanceParams(_Params):
    study: StudyName
    params: Annotated[list[ParamName], Meta(min_length=1)] | UnsetType = UNSET
    """Only these parameters (default: all of the completed trials' common parameters)."""
    objective: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    """Rank for this objective only (0-based); without it, a multi-objective study's parameters
    are ranked for its Pareto front."""


class ImportanceResult(Struct):
    importances: dict[str, float]


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


class RenewParams(_Params):
    study: StudyName
    number: Annotated[int, Meta(ge=0)]
    lease_s: LeaseSeconds | UnsetType = UNSET
    """A new lease length; without it, the length the trial was asked with."""


class RenewResult(Struct):
    number: int
    lease_end: str
    """When the renewed lease ends (ISO 8601, UTC)."""


class AddedTrial(Struct, forbid_unknown_fields=True, kw_only=True):
    """A trial evaluated outside the worker, recorded as if it had been asked and told."""

    params: dict[ParamName, JsonScalar] = {}
    """Values in the study's search space (every name must be in it)."""
    value: float | UnsetType = UNSET
    values: Annotated[list[float], Meta(min_length=1, max_length=16)] | UnsetType = UNSET
    state: Literal["complete", "pruned", "fail"] = "complete"
    user_attrs: UserAttrs = {}
    intermediate_values: dict[Annotated[int, Meta(ge=0)], float] = {}
    """Keyed by step (JSON object keys: strings of integers)."""
    constraints: Annotated[list[float], Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    """Constraint values (feasible when all are <= 0), as ``tell`` takes them."""


class AddTrialsParams(_Params):
    study: StudyName
    trials: Annotated[list[AddedTrial], Meta(min_length=1, max_length=1000)]


class AddTrialsResult(Struct):
    numbers: list[int]
    """The numbers the added trials got, in request order."""


PlotKind = Literal[
    "optimization_history",
    "intermediate_values",
    "param_importances",
    "parallel_coordinate",
    "contour",
    "slice",
    "edf",
    "rank",
    "timeline",
    "pareto_front",
    "hypervolume_history",
]
PlotFormat = Literal["plotly", "png", "svg"]
Pixels = Annotated[int, Meta(ge=100, le=4000)]


class PlotParams(_Params):
    study: StudyName
    kind: PlotKind
    """The ``optuna.visualization.plot_<kind>`` figure."""
    format: PlotFormat = "png"
    """``plotly``: the figure as plotly.js JSON; ``png``/``svg``: an image drawn by Optuna's
    matplotlib backend."""
    params: Annotated[list[ParamName], Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    """Only these parameters (figures over parameters; default: all)."""
    objective: Annotated[int, Meta(ge=0, le=15)] | UnsetType = UNSET
    """Plot this objective (0-based) of a multi-objective study."""
    width: Pixels = 900
    height: Pixels = 600
    reference_point: Annotated[list[float], Meta(min_length=2, max_length=16)] | UnsetType = UNSET
    """``hypervolume_history`` only: the reference point (one per objective; required there)."""


class PlotResult(Struct):
    format: PlotFormat
    data: str | UnsetType = UNSET
    """``png``/``svg``: the image, base64."""
    figure: Raw | UnsetType = UNSET
    """``plotly``: the figure JSON (``data`` traces and ``layout``) plotly.js renders."""
    warnings: list[str] | UnsetType = UNSET
    """What the figure leaves out to stay bounded (absent when it shows everything)."""


ArtifactName = Annotated[str, Meta(min_length=1, max_length=255)]
Sha256Hex = Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")]


class ArtifactPutParams(_Params):
    study: StudyName
    name: ArtifactName
    """The file's name as the dashboard shows it (a label, never a path)."""
    data: str
    """This chunk, base64."""
    number: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    """The trial the file belongs to; without it, the study."""
    content_type: Annotated[str, Meta(min_length=1, max_length=255)] = "application/octet-stream"
    offset: Annotated[int, Meta(ge=0)] = 0
    """Where this chunk starts in the file: 0 starts (or restarts) the upload; each next chunk
    starts where the previous one ended."""
    final: bool = True
    sha256: Sha256Hex | UnsetType = UNSET
    """Hex SHA-256 of the whole file; required with ``final``."""


class ArtifactPutResult(Struct, omit_defaults=True):
    size: int
    """Bytes received so far (the file's size once ``final``)."""
    artifact_id: str | None = None
    sha256: str | None = None


class ArtifactsParams(_Params):
    study: StudyName
    number: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    """Only this trial's artifacts; without it, the study's own and every trial's."""


class ArtifactInfo(Struct):
    artifact_id: str
    name: str
    content_type: str
    size: int
    sha256: str | None
    number: int | None
    """The trial it belongs to (null: the study)."""


class ArtifactsResult(Struct):
    artifacts: list[ArtifactInfo]


class ArtifactGetParams(_Params):
    study: StudyName
    artifact_id: Annotated[str, Meta(min_length=1, max_length=64)]
    offset: Annotated[int, Meta(ge=0)] = 0
    limit: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    """At most this many bytes (default and maximum: what fits in one reply)."""


class ArtifactGetResult(Struct):
    data: str
    """The bytes from ``offset``, base64."""
    offset: int
    size: int
    """The whole file's size."""
    eof: bool


MAX_COPIED_TRIALS = 100_000
"""At most this many trials per ``copy_trials`` call (each is a storage write)."""


class CopyTrialsParams(_Params):
    from_: StudyName = msgspec.field(name="from")
    """The study whose trials are copied (in this worker's storage)."""
    to: StudyName
    """The study they are copied into; it may be the same study."""
    states: Annotated[list[Literal["complete", "pruned", "fail"]], Meta(min_length=1)] = (
        msgspec.field(default_factory=lambda: ["complete"])
    )
    limit: Annotated[int, Meta(ge=1, le=MAX_COPIED_TRIALS)] | UnsetType = UNSET
    """Copy at most this many (the first ones in trial-number order)."""
    params_only: bool = False
    """Enqueue the trials' parameters in the target (evaluated anew by its next asks) instead of
    copying the finished trials with their values."""


class CopyTrialsResult(Struct):
    copied: int
    skipped: int
    """Trials of the selected states left out: a parameter outside the target's search space,
    or values that do not fit its directions."""
    numbers: list[int]
    """The numbers the copies got in the target, in the source's order."""


class SetStopParams(_Params):
    study: StudyName
    stop: StopRules | None
    """The new rules (replacing the old ones), or null to clear them (asking resumes)."""


class SetStopResult(Struct):
    study: str
    stop: StopRules | None
    stopped: Stopped | None
    """Why the study is stopped under the new rules (null: it is not)."""


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
    signature: str | UnsetType = UNSET
    """``hmac-sha256:<hex>`` of the canonical document without this field, with the operator's
    ``--snapshot-key`` (only in snapshots exported by a worker that has one)."""


# --------------------------------------------------------------------------------------------
# Codec objects, built once and reused for every frame
# --------------------------------------------------------------------------------------------

envelope_decoder = msgspec.json.Decoder(RequestEnvelope)


def request_decoder(params_types: Mapping[str, type[Struct]]) -> msgspec.json.Decoder[Any]:
    """One decoder for a whole well-formed request: a union of one struct per method, told
    apart by ``method`` (a tagged union), each with :class:`RequestEnvelope`'s other fields and
    that method's typed ``params``, so a frame is parsed once (issue 24). Each struct's
    ``method_name`` is its method's name.

    Only for the frames nearly every parent sends: whatever it refuses (an unknown method,
    params that are not the method's, params by position, a missing ``method``) is decoded
    again by :data:`envelope_decoder` and the method's params decoder, which say what is wrong.
    Both decode the same structs, so a frame one accepts the other accepts with the same values
    (``tests/protocol/test_one_pass_decode.py``)."""
    envelope = [
        (f.name, f.type, f.default)
        for f in msgspec.structs.fields(RequestEnvelope)
        if f.name not in ("method", "params")
    ]
    requests = []
    for name, params_type in params_types.items():
        try:
            params_type()
            params: tuple[Any, ...] = (
                "params",
                params_type,
                msgspec.field(default_factory=params_type),
            )
        except TypeError:  # required fields: no params is an error the fallback words
            params = ("params", params_type)
        requests.append(
            msgspec.defstruct(
                f"Request_{name}",
                [*envelope, params],
                namespace={"method_name": name},
                kw_only=True,
                tag_field="method",
                tag=name,
            )
        )
    return msgspec.json.Decoder(Union[tuple(requests)])  # noqa: UP007 (a union made at run time)


batch_decoder = msgspec.json.Decoder(list[Raw])
encoder = msgspec.json.Encoder()
