"""``plot``: a figure of a study (any of ``optuna.visualization``), as plotly JSON or an image."""

from __future__ import annotations

from msgspec import UNSET, Raw

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.schema import PlotParams, PlotResult

REPLY_OVERHEAD = 1024
"""Bytes of a ``plot`` reply around the figure itself (envelope, id, field names)."""


@rpc_method("plot", reads_only=True)
def plot(registry: StudyRegistry, params: PlotParams) -> PlotResult:
    """Bounded before drawing: a study with more trials than ``--max-plot-trials`` or a figure of
    more panels than ``--max-plot-panels`` is refused; the drawing runs in its own process under
    ``--max-plot-seconds`` and ``--max-plot-memory-mib``; a figure whose reply would not fit in
    ``--max-frame-bytes`` is ``limit_exceeded``."""
    from bridge_worker.studies import (
        figures,  # its sandbox and Optuna's plotting: on the first plot
    )

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
    figure = figures.render(entry.study, request, entry.metric_names(), registry.limits)
    notes = figure.warnings or UNSET
    if figure.format == "plotly":
        _check_fits(registry, len(figure.data), figure.format)
        return PlotResult(format="plotly", figure=Raw(figure.data), warnings=notes)
    data = figures.encode_image(figure.data)
    _check_fits(registry, len(data), figure.format)
    return PlotResult(format=figure.format, data=data, warnings=notes)


def _check_fits(registry: StudyRegistry, size: int, format: str) -> None:
    limit = registry.limits.max_frame_bytes
    if size + REPLY_OVERHEAD > limit:
        # plotly JSON grows with the trials and params, not with the pixels; an image the other way
        advice = (
            "plot fewer params, or ask for png (its size depends on the pixels, not the trials)"
            if format == "plotly"
            else "plot fewer params, a smaller width and height, or png rather than svg"
        )
        raise BridgeError(
            ErrorKind.LIMIT_EXCEEDED,
            f"the figure takes {size} bytes; a reply may take at most {limit} "
            f"(--max-frame-bytes): {advice}",
            limit="max_frame_bytes",
            value=size + REPLY_OVERHEAD,
            max=limit,
        )
