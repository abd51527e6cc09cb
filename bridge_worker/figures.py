"""Figures of a study: Optuna's ``optuna.visualization`` as plotly JSON, PNG or SVG.

``plotly`` returns the figure JSON (``data`` traces and ``layout``) that a web page or a Phoenix
LiveView hands to plotly.js as it is. ``png`` and ``svg`` are drawn by Optuna's matplotlib backend
on the headless Agg canvas, so no browser (plotly's kaleido) is needed. Everything optional is
imported only when a figure is asked for, and a missing package is ``missing_dependency`` naming
the ``[plots]`` extra, never a crash. Images are rendered reproducibly (no date in SVG, a fixed SVG
id salt), so one study always gives the same bytes on one installation.
"""

from __future__ import annotations

import base64
import importlib
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from bridge_worker.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.schema import PlotFormat, PlotKind

EXTRA = "plots"

PARAM_KINDS = frozenset({"param_importances", "parallel_coordinate", "contour", "slice", "rank"})
"""Figures over parameters: they take ``params``."""
TARGET_KINDS = PARAM_KINDS | {"optimization_history", "edf"}
"""Figures of one objective: they take ``objective`` (and need it for several objectives,
except ``param_importances``, which then shows every objective)."""
MULTI_OBJECTIVE_KINDS = frozenset({"pareto_front", "hypervolume_history"})
SINGLE_OBJECTIVE_KINDS = frozenset({"intermediate_values"})
DPI = 100


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


def render(study: optuna.Study, request: FigureRequest, metric_names: list[str] | None) -> Figure:
    """Draw ``request.kind`` for ``study``; invalid combinations are ``invalid_params``."""
    _check_dependencies(request)
    kwargs = _arguments(study, request, metric_names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and "few trials" warnings
            if request.format == "plotly":
                return Figure("plotly", _plotly(request, kwargs))
            return Figure(request.format, _image(request, kwargs))
    except ImportError as exc:  # a package the figure needs that the checks above did not know
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
        package=package, extra=EXTRA,
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
            raise invalid_params(
                "$.params.objective", f"the study has {n_objectives} objective(s)"
            )
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
                metric_names[index] if metric_names else
                "Objective Value" if n_objectives == 1 else f"Objective {index}"
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
    # deferred: matplotlib is an optional extra (``plots``) and costs ~0.5 s to import
    import matplotlib

    matplotlib.use("Agg")  # headless: never a window, never a browser
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as mpl_figures

    matplotlib.rcParams["svg.hashsalt"] = "optuna-bridge"
    axes = getattr(mpl_figures, f"plot_{request.kind}")(**kwargs)
    figure = _figure_of(axes)
    try:
        figure.set_size_inches(request.width / DPI, request.height / DPI)
        out = io.BytesIO()
        metadata = {"Date": None} if request.format == "svg" else {}
        figure.savefig(out, format=request.format, dpi=DPI, metadata=metadata)
        return out.getvalue()
    finally:
        plt.close(figure)


def _figure_of(axes: Any) -> Any:
    """Optuna's matplotlib functions return one Axes or an array of them."""
    if isinstance(axes, Sequence) or hasattr(axes, "flat"):
        return next(iter(axes.flat)).figure
    return axes.figure
