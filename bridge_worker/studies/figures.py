"""Figures of a study: Optuna's ``optuna.visualization`` as plotly JSON, PNG or SVG.

``plotly`` returns the figure JSON (``data`` traces and ``layout``) that a web page or a Phoenix
LiveView hands to plotly.js as it is. ``png`` and ``svg`` are drawn by Optuna's matplotlib backend
on the headless Agg canvas, so no browser (plotly's kaleido) is needed. Everything optional is
imported only when a figure is asked for, and a missing package is ``missing_dependency`` naming
the ``[plots]`` extra, never a crash. Images are rendered reproducibly (no date in SVG, a fixed SVG
id salt), so one study always gives the same bytes on one installation.

A figure's cost is bounded before it is drawn (trials, panels; a few kinds draw a bounded part of
the study and say so in ``warnings``), and it is drawn in a child process with its own memory and
time limits (:mod:`bridge_worker.studies.figure_sandbox`); images are made readable at their size by
:mod:`bridge_worker.studies.figure_layout`. The matplotlib contour is drawn by
:mod:`bridge_worker.studies.figure_contour` (from Optuna's private contour data), every other image
by Optuna's own matplotlib functions.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import io
import warnings
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import optuna
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.studies import figure_sandbox
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.schema import PlotFormat, PlotKind

EXTRA = "plots"

PARAM_KINDS = frozenset({"param_importances", "parallel_coordinate", "contour", "slice", "rank"})
"""Figures over parameters: they take ``params``."""
TARGET_KINDS = PARAM_KINDS | {"optimization_history", "edf"}
"""Figures of one objective: they take ``objective`` (and need it for several objectives,
except ``param_importances``, which then shows every objective)."""
MULTI_OBJECTIVE_KINDS = frozenset({"pareto_front", "hypervolume_history"})
SINGLE_OBJECTIVE_KINDS = frozenset({"intermediate_values"})
FOR_ONE_OBJECTIVE: tuple[str, ...] = tuple(
    kind for kind in get_args(PlotKind) if kind not in MULTI_OBJECTIVE_KINDS
)
"""Every kind a single-objective study can draw, in the schema's order."""
DPI = 100
GRID_MAX_TRIALS = 200
"""Completed trials a contour or rank figure draws (evenly spaced by number): their cost grows
with points x panels, and a surface drawn from 200 points looks the same as from thousands."""
CURVES_MAX = 50
"""Trials whose intermediate values are drawn (the most recent ones)."""
TIMELINE_MAX = 300
"""Trials a timeline draws (the most recent ones): one bar each, and at a default height of 600
pixels more bars than this are thinner than a pixel (and cost seconds)."""
LEGEND_MAX = 12
"""More legend entries than this are not readable at any default size: the legend is left out."""
GRID_KINDS = frozenset({"contour", "rank"})
"""Figures drawing one panel per pair of parameters (params x params, one for two params)."""


@dataclass(frozen=True, slots=True)
class FigureRequest:
    kind: PlotKind
    format: PlotFormat
    width: int
    height: int
    params: list[str] | None = None
    objective: int | None = None
    reference_point: list[float] | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    format: PlotFormat
    data: bytes
    """Image bytes (png, svg) or the plotly figure JSON."""
    warnings: list[str]
    """What the figure leaves out, so a reader knows (``contour drawn from 200 of 5000 ...``)."""


def render(
    study: optuna.Study,
    request: FigureRequest,
    metric_names: list[str] | None,
    limits: Limits,
) -> Figure:
    """Draw ``request.kind`` for ``study``; invalid combinations are ``invalid_params``.

    Everything a figure's cost depends on is checked before drawing: the trials and the panels it
    would draw (``limit_exceeded``), and figures that would show nothing (no completed trial,
    contour of one parameter) are errors saying why. The drawing itself happens in a child process
    (:mod:`bridge_worker.studies.figure_sandbox`) bounded by ``--max-plot-seconds`` and
    ``--max-plot-memory-mib``, so no figure can crash or stall the worker.
    """
    _check_dependencies(request)
    kwargs = _arguments(study, request, metric_names)
    trials = study.get_trials(deepcopy=False)
    _check_content(request, trials, kwargs)
    limits.check(
        "max_plot_panels", f"panels of the {request.kind} figure", _panels(request, trials, kwargs)
    )
    shown, kwargs, notes = _bounded(request, trials, kwargs)
    directions = list(study.directions)
    _preload(request)

    def draw() -> bytes:
        return _draw(request, _StudyOfTrials(directions, shown), kwargs)

    try:
        data = figure_sandbox.run_isolated(
            draw,
            memory_bytes=limits.max_plot_memory_mib * 1024 * 1024,
            timeout_s=limits.max_plot_seconds,
        )
    except figure_sandbox.SandboxMemoryError as exc:
        raise BridgeError(
            ErrorKind.LIMIT_EXCEEDED,
            f"drawing {request.kind} ran out of memory ({exc.detail}): the process drawing a "
            f"figure may use {limits.max_plot_memory_mib} MiB (--max-plot-memory-mib); plot "
            "fewer params or fewer trials",
            limit="max_plot_memory_mib",
            max=limits.max_plot_memory_mib,
        ) from None
    except figure_sandbox.SandboxTimeout:
        raise BridgeError(
            ErrorKind.LIMIT_EXCEEDED,
            f"drawing {request.kind} took longer than {limits.max_plot_seconds} s "
            "(--max-plot-seconds) and was stopped; plot fewer params or fewer trials",
            limit="max_plot_seconds",
            max=limits.max_plot_seconds,
        ) from None
    except figure_sandbox.SandboxFailure as exc:
        raise BridgeError(
            ErrorKind.INTERNAL_ERROR, f"drawing {request.kind} failed: {exc}"
        ) from None
    return Figure(request.format, data, notes)


class _StudyOfTrials(optuna.Study):
    """The study a figure is drawn from, in the drawing process: its directions, and the trials
    the figure shows as they are, never copied.

    The worker's trials are the drawing process's own copy of its memory, so nothing there needs
    protecting: Optuna's ``study.trials`` and ``get_trials()`` deep-copy every trial (~0.4 s for
    1000, more than a timeline or history figure costs otherwise), and loading a part of them
    into an in-memory study cost ~0.3 ms a trial; a durable storage is never read there (its
    connections are the worker's). Nothing in Optuna's figures reads a study otherwise."""

    def __init__(self, directions: list[StudyDirection], trials: list[FrozenTrial]) -> None:
        storage = InMemoryStorage()
        name = storage.get_study_name_from_id(storage.create_new_study(directions))
        super().__init__(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
        self._shown_trials = trials

    @property
    def trials(self) -> list[FrozenTrial]:
        return self._shown_trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is None:
            return self._shown_trials
        return [trial for trial in self._shown_trials if trial.state in states]


def _draw(request: FigureRequest, study: optuna.Study, kwargs: dict[str, Any]) -> bytes:
    """Runs in the drawing process."""
    kwargs = {**kwargs, "study": study}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and "few trials" warnings
            if request.format == "plotly":
                return _plotly(request, kwargs)
            return _image(request, kwargs)
    except ImportError as exc:  # a package the figure needs that the checks above did not know
        text = str(exc).lower()
        if isinstance(exc.__context__, MemoryError) or "memory" in text or "map segment" in text:
            raise MemoryError from None  # loading it took more memory than the figure may use
        raise missing_dependency(request, (exc.name or "?").split(".")[0]) from None
    except (ValueError, RuntimeError) as exc:
        raise invalid_params("$.params.kind", f"cannot draw {request.kind}: {exc}") from None


def encode_image(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_dependencies(request: FigureRequest) -> None:
    needed = ["plotly"] if request.format == "plotly" else ["matplotlib"]
    if request.kind == "contour":
        needed.append("scipy")  # to interpolate the contour lines
    for package in needed:
        try:
            importlib.import_module(package)
        except ImportError:
            raise missing_dependency(request, package) from None


def missing_dependency(request: FigureRequest, package: str) -> BridgeError:
    return BridgeError(
        ErrorKind.MISSING_DEPENDENCY,
        f"plot {request.kind!r} as {request.format} needs the Python package {package!r}, "
        f"which is not installed: pip install 'optuna-bridge[{EXTRA}]'",
        package=package,
        extra=EXTRA,
    )


def _arguments(
    study: optuna.Study, request: FigureRequest, metric_names: list[str] | None
) -> dict[str, Any]:
    kind = request.kind
    n_objectives = len(study.directions)
    kwargs: dict[str, Any] = {"study": study}
    if kind in MULTI_OBJECTIVE_KINDS and n_objectives < 2:
        raise invalid_params("$.params.kind", f"{kind} needs a multi-objective study")
    if kind in SINGLE_OBJECTIVE_KINDS and n_objectives > 1:
        raise invalid_params("$.params.kind", f"{kind} needs a single-objective study")
    if request.params is not None:
        if kind not in PARAM_KINDS:
            raise invalid_params("$.params.params", f"{kind} takes no params")
        known = {name for trial in study.get_trials(deepcopy=False) for name in trial.params}
        for index, name in enumerate(request.params):
            if name not in known:
                raise invalid_params(
                    f"$.params.params[{index}]", f"no trial of the study has a parameter {name!r}"
                )
        kwargs["params"] = list(request.params)
    if request.objective is not None:
        if kind not in TARGET_KINDS:
            raise invalid_params("$.params.objective", f"{kind} takes no objective")
        if request.objective >= n_objectives:
            raise invalid_params("$.params.objective", f"the study has {n_objectives} objective(s)")
    if kind in TARGET_KINDS:
        if n_objectives > 1 and request.objective is None and kind != "param_importances":
            raise invalid_params(
                "$.params.objective", f"{kind} of a multi-objective study needs objective"
            )
        index = request.objective if request.objective is not None else 0
        if request.objective is not None:
            kwargs["target"] = _objective(index)
        if n_objectives == 1 or request.objective is not None:
            kwargs["target_name"] = (
                metric_names[index]
                if metric_names
                else "Objective Value"
                if n_objectives == 1
                else f"Objective {index}"
            )
    if kind == "pareto_front" and metric_names:
        kwargs["target_names"] = list(metric_names)
    if request.reference_point is not None and kind != "hypervolume_history":
        raise invalid_params("$.params.reference_point", f"{kind} takes no reference_point")
    if kind == "hypervolume_history":
        point = request.reference_point
        if point is None or len(point) != n_objectives:
            raise invalid_params(
                "$.params.reference_point",
                f"hypervolume_history needs a reference_point of {n_objectives} values",
            )
        kwargs["reference_point"] = list(point)
    return kwargs


def _check_content(
    request: FigureRequest, trials: list[FrozenTrial], kwargs: dict[str, Any]
) -> None:
    """A figure that would show nothing is an error saying why, never a blank success."""
    kind = request.kind
    name = kwargs["study"].study_name
    if kind == "timeline":
        if not trials:
            raise BridgeError(
                ErrorKind.NO_COMPLETED_TRIALS,
                f"timeline needs at least one trial; study {name!r} has none",
                study=name,
            )
        return
    if kind == "intermediate_values":
        if not any(trial.intermediate_values for trial in trials):
            raise BridgeError(
                ErrorKind.NO_COMPLETED_TRIALS,
                f"intermediate_values needs a trial with reported values (report); "
                f"no trial of study {name!r} has one",
                study=name,
            )
        return
    completed = sum(trial.state == TrialState.COMPLETE for trial in trials)
    needed = 2 if kind == "param_importances" else 1
    if completed < needed:
        raise BridgeError(
            ErrorKind.NO_COMPLETED_TRIALS,
            f"{kind} needs at least {needed} completed trial(s); study {name!r} has {completed}",
            study=name,
            n_completed=completed,
        )
    if kind == "contour":
        params = _plotted_params(trials, kwargs)
        if len(params) < 2:
            raise invalid_params(
                "$.params.params",
                "contour needs two parameters or more; it would show "
                f"{', '.join(map(repr, params)) or 'none'} (slice shows one parameter)",
            )


def _plotted_params(trials: list[FrozenTrial], kwargs: dict[str, Any]) -> list[str]:
    if "params" in kwargs:
        return list(kwargs["params"])
    names = {n for t in trials if t.state == TrialState.COMPLETE for n in t.params}
    return sorted(names)


def _panels(request: FigureRequest, trials: list[FrozenTrial], kwargs: dict[str, Any]) -> int:
    """Panels (or axes) the figure draws: what its cost grows with beside the trials."""
    if request.kind not in PARAM_KINDS - {"param_importances"}:
        return 1
    n = len(_plotted_params(trials, kwargs))
    if request.kind in GRID_KINDS:
        return 1 if n <= 2 else n * n
    return n


def _bounded(
    request: FigureRequest, trials: list[FrozenTrial], kwargs: dict[str, Any]
) -> tuple[list[FrozenTrial], dict[str, Any], list[str]]:
    """The trials (and arguments) a figure draws, so that its cost stays bounded, and a warning
    for everything left out."""
    kind = request.kind
    if kind in GRID_KINDS:
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if len(completed) > GRID_MAX_TRIALS:
            step = len(completed) / GRID_MAX_TRIALS
            kept = [completed[int(i * step)] for i in range(GRID_MAX_TRIALS)]
            note = (
                f"{kind} drawn from {len(kept)} of {len(completed)} completed trials "
                "(evenly spaced by number)"
            )
            return kept, kwargs, [note]
    if kind == "intermediate_values":
        reporting = [t for t in trials if t.intermediate_values]
        if len(reporting) > CURVES_MAX:
            shown = {t.number for t in reporting[-CURVES_MAX:]}
            trimmed = [t if t.number in shown else _without_intermediate_values(t) for t in trials]
            note = (
                f"intermediate values of the {CURVES_MAX} most recent of "
                f"{len(reporting)} reporting trials"
            )
            return trimmed, kwargs, [note]
    if kind == "timeline" and len(trials) > TIMELINE_MAX:
        note = f"timeline of the {TIMELINE_MAX} most recent of {len(trials)} trials"
        return trials, {**kwargs, "n_recent_trials": TIMELINE_MAX}, [note]
    return trials, kwargs, []


def _without_intermediate_values(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` without its curve (it keeps its number, the next ones keep theirs)."""
    bare = copy.copy(trial)
    bare.intermediate_values = {}
    return bare


def _preload(request: FigureRequest) -> None:
    """Import what drawing needs here, once, so that every drawing process inherits it instead
    of importing it again (matplotlib alone costs ~0.5 s)."""
    if request.format == "plotly":
        importlib.import_module("optuna.visualization")
        importlib.import_module(f"optuna.visualization._{request.kind}")
    else:
        import matplotlib

        matplotlib.use("Agg")  # headless: never a window, never a browser
        importlib.import_module("matplotlib.pyplot")
        importlib.import_module("matplotlib.backends.backend_agg")
        importlib.import_module("optuna.visualization.matplotlib")
        importlib.import_module(f"optuna.visualization.matplotlib._{request.kind}")
        importlib.import_module(
            "matplotlib.backends.backend_svg" if request.format == "svg" else "PIL.PngImagePlugin"
        )
        _warm_up()
    if request.kind == "contour":
        importlib.import_module("scipy.sparse.linalg")


SVG_CROWD = 100
"""Dots of one scatter above which an SVG draws it as an image: a thousand vector dots in each
panel of a slice or rank figure were most of their ~0.7 MiB SVGs."""


def _rasterize_crowds(figure: Any) -> None:
    """In an SVG, draw every scatter of more than ``SVG_CROWD`` dots as pixels (at the figure's
    resolution) and keep texts, axes and lines as vectors (lines across a whole figure, as
    parallel coordinates', are smaller as vectors)."""
    from matplotlib.collections import PathCollection

    for ax in figure.axes:
        for artist in ax.get_children():
            if isinstance(artist, PathCollection) and len(artist.get_offsets()) > SVG_CROWD:  # type: ignore[arg-type]
                artist.set_rasterized(True)


@functools.cache
def _warm_up() -> None:
    """Draw one small figure here, once: the fonts it loads, the lookups it caches and the
    mathtext parser it builds (a log axis labels its ticks ``10^{-5}``) are then inherited by
    every drawing process, which otherwise built them again for each figure (~0.1-0.3 s)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2), dpi=DPI)
    ax = figure.subplots()
    ax.set(yscale="log", ylim=(1e-5, 1e-1), title="warm", xlabel="x")
    FigureCanvasAgg(figure).draw()  # type: ignore[no-untyped-call]


def _objective(index: int) -> Callable[[FrozenTrial], float]:
    def target(trial: FrozenTrial) -> float:
        return float(trial.values[index])

    return target


def _plotly(request: FigureRequest, kwargs: dict[str, Any]) -> bytes:
    # deferred: plotly is an optional extra (``plots``), loaded by the first plot only
    import optuna.visualization as plotly_figures

    figure = getattr(plotly_figures, f"plot_{request.kind}")(**kwargs)
    figure.update_layout(width=request.width, height=request.height)
    return str(figure.to_json()).encode()


def _image(request: FigureRequest, kwargs: dict[str, Any]) -> bytes:
    import matplotlib.pyplot as plt

    figure = build_matplotlib_figure(request, kwargs)
    try:
        return _print(figure, request.format)
    finally:
        plt.close(figure)


def _print(figure: Any, format: PlotFormat) -> bytes:
    """The image of a laid-out figure, drawn once. ``savefig`` draws every figure that has a
    layout engine twice (once to lay it out, once to print it), and :mod:`figure_layout` has
    laid it out already: printing on the canvas halves what saving costs."""
    out = io.BytesIO()
    figure.set_dpi(DPI)
    # deferred: matplotlib is an optional extra (``plots``); _preload imported the backend
    if format == "svg":
        from matplotlib.backends.backend_svg import FigureCanvasSVG

        _rasterize_crowds(figure)

        FigureCanvasSVG(figure).print_svg(  # type: ignore[no-untyped-call]
            out, metadata={"Date": None}
        )
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(figure).print_png(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def build_matplotlib_figure(request: FigureRequest, kwargs: dict[str, Any]) -> Any:
    """Optuna's matplotlib figure at the asked size, made readable
    (:mod:`bridge_worker.studies.figure_layout`); the caller closes it."""
    # deferred: matplotlib is an optional extra (``plots``); _preload imported it already
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as mpl_figures

    from bridge_worker.studies import figure_layout

    matplotlib.rcParams["svg.hashsalt"] = "optuna-bridge"
    if request.kind == "contour":
        from bridge_worker.studies import figure_contour

        axes = figure_contour.plot_contour(**kwargs)
    else:
        axes = getattr(mpl_figures, f"plot_{request.kind}")(**kwargs)
    figure = _figure_of(axes)
    try:
        figure.set_size_inches(request.width / DPI, request.height / DPI)
        figure.set_dpi(DPI)
        figure_layout.make_readable(figure, legend_max=LEGEND_MAX)
    except BaseException:
        plt.close(figure)
        raise
    return figure


def _figure_of(axes: Any) -> Any:
    """Optuna's matplotlib functions return one Axes or an array of them."""
    if isinstance(axes, Sequence) or hasattr(axes, "flat"):
        return next(iter(axes.flat)).figure
    return axes.figure
