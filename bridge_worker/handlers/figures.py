"""``plot``: a figure of a study (any of ``optuna.visualization``), as plotly JSON or an image."""

from __future__ import annotations

from msgspec import UNSET, Raw

from bridge_worker import figures
from bridge_worker.dispatch import rpc_method
from bridge_worker.errors import BridgeError, ErrorKind
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema import PlotParams, PlotResult

REPLY_OVERHEAD = 1024
"""Bytes of a ``plot`` reply around the figure itself (envelope, id, field names)."""


@rpc_method("plot", reads_only=True)
def plot(registry: StudyRegistry, params: PlotParams) -> PlotResult:
    """Bounded: a study with more trials than ``--max-plot-trials`` is refused before drawing,
    and a figure whose reply would not fit in ``--max-frame-bytes`` is ``limit_exceeded``."""
    entry = registry.get(params.study)
    n_trials = entry.n_trials()
    registry.limits.check("max_plot_trials", f"trials in study {entry.name!r}", n_trials)
    request = figures.FigureRequest(
        kind=params.kind,
        format=params.format,
        width=params.width,
        height=params.height,
        params=None if params.params is UNSET else list(params.params),
        objective=None if params.objective is UNSET else params.objective,
        reference_point=None if params.reference_point is UNSET else params.reference_point,
    )
    figure = figures.render(entry.study, request, entry.metric_names())
    if figure.format == "plotly":
        _check_fits(registry, len(figure.data))
        return PlotResult(format="plotly", figure=Raw(figure.data))
    data = figures.encode_image(figure.data)
    _check_fits(registry, len(data))
    return PlotResult(format=figure.format, data=data)


def _check_fits(registry: StudyRegistry, size: int) -> None:
    limit = registry.limits.max_frame_bytes
    if size + REPLY_OVERHEAD > limit:
        raise BridgeError(
            ErrorKind.LIMIT_EXCEEDED,
            f"the figure takes {size} bytes; a reply may take at most {limit} "
            "(--max-frame-bytes): plot fewer params, a smaller size, or png",
            limit="max_frame_bytes", value=size + REPLY_OVERHEAD, max=limit,
        )
