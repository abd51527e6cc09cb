"""Make a matplotlib figure readable at the size it is drawn: nothing outside the canvas, no tick
labels on top of each other, time axes whose ticks differ.

Optuna's matplotlib figures are laid out for an interactive window: legends sit right of the
axes (cut off in a saved image), a grid of contour panels crowds its tick labels, and a timeline
labels every tick with the same second when the trials took milliseconds. This module fixes a
built figure in place; it knows nothing of Optuna or of the protocol, and
``tests/studies/test_figure_layout.py`` checks its promise on every kind of figure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib.dates as mdates
import matplotlib.ticker as mticker
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine, TightLayoutEngine
from matplotlib.text import Text
from matplotlib.transforms import BboxBase

_PASSES = 4
"""Rounds of "draw, find overlapping labels, thin them" before giving up (each halves them)."""


def make_readable(figure: Figure, legend_max: int) -> None:
    """Fix ``figure`` in place for its current size (set the size first)."""
    axes = [ax for ax in figure.axes if ax.get_visible()]
    for ax in axes:
        _legend_inside_or_none(ax, legend_max)
        _distinct_time_ticks(ax)
    if len(axes) > 4:  # a grid of panels: few ticks from the start, so one layout pass does
        for ax in axes:
            _few_ticks(ax)
        _label_outer_panels(axes)
    if not _lay_out_grid(figure, axes):
        _lay_out(figure)
    for _ in range(_PASSES):
        if not any([_thin_overlapping(ax, "x") | _thin_overlapping(ax, "y") for ax in axes]):
            break
        figure.draw_without_rendering()  # lays out and places every text, draws no pixel
    for ax in axes:
        _keep_legend_in_canvas(figure, ax)
    # Keep this layout: saving would otherwise solve it once more (the slowest step of a grid).
    engine = figure.get_layout_engine()
    if engine is not None:
        figure.set_layout_engine(
            PlaceHolderLayoutEngine(engine.adjust_compatible, engine.colorbar_gridspec)
        )


def _lay_out(figure: Figure) -> None:
    """Constrained layout (it makes room for colorbars and legends) where matplotlib can solve
    it; else (parallel coordinates' stacked axes, a small canvas) one tight layout, kept."""
    figure.set_layout_engine("constrained")
    try:
        figure.draw_without_rendering()
    except (ZeroDivisionError, ValueError):  # constrained layout on axes it cannot place
        engine = figure.get_layout_engine()
        assert engine is not None
        figure.set_layout_engine(PlaceHolderLayoutEngine(True, engine.colorbar_gridspec))
        TightLayoutEngine().execute(figure)
        figure.draw_without_rendering()


_PAD = 6.0
"""Pixels between the canvas's edge, a grid's labels and its colorbar."""


def _lay_out_grid(figure: Figure, axes: list[Axes]) -> bool:
    """Lay out a grid of panels labelled on its outer edge only (and a colorbar right of it) by
    measuring those labels once, instead of constrained layout's repeated measuring of every
    panel (~0.6 s for 4 x 4 panels, the largest cost of a grid). False (nothing changed) for any
    other figure."""
    panels = [ax for ax in axes if ax.get_subplotspec() is not None]
    bars = [ax for ax in axes if ax.get_subplotspec() is None]
    if len(panels) <= 4 or len(bars) > 1:
        return False
    grid = panels[0].get_subplotspec().get_gridspec()  # type: ignore[union-attr]
    if any(
        ax.get_subplotspec().get_gridspec() is not grid  # type: ignore[union-attr]
        for ax in panels
    ):
        return False
    if any(ax.get_title() for ax in panels):
        return False
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    width, height = figure.bbox.width, figure.bbox.height
    left = bottom = over_x = over_y = 0.0  # labels beyond a panel: at the edges, between panels
    for ax in panels:
        box = ax.get_window_extent(renderer)
        for axis in (ax.xaxis, ax.yaxis):
            tight = None if _bare(axis) else axis.get_tightbbox(renderer)
            if tight is None:
                continue
            left, bottom = max(left, box.x0 - tight.x0), max(bottom, box.y0 - tight.y0)
            over_x = max(over_x, tight.x1 - box.x1, 0.0 if axis is ax.yaxis else box.x0 - tight.x0)
            over_y = max(over_y, tight.y1 - box.y1, 0.0 if axis is ax.xaxis else box.y0 - tight.y0)
    top = over_y
    suptitle = getattr(figure, "_suptitle", None)  # matplotlib has no getter for it
    if suptitle is not None and suptitle.get_text():
        top = max(top, height - suptitle.get_window_extent(renderer).y0)
    right = over_x
    bar_width = 0.025 * width
    if bars:
        (bar,) = bars
        box = bar.get_window_extent(renderer)
        tight = bar.get_tightbbox(renderer)
        right += (tight.x1 - box.x1 if tight is not None else 0.0) + bar_width + 2 * _PAD
    x0, x1 = (left + _PAD) / width, 1 - (right + _PAD) / width
    y0, y1 = (bottom + _PAD) / height, 1 - (top + _PAD) / height
    rows, columns = grid.get_geometry()
    gap_x, gap_y = 2 * over_x + _PAD, 2 * over_y + _PAD
    panel_x = ((x1 - x0) * width - (columns - 1) * gap_x) / columns
    panel_y = ((y1 - y0) * height - (rows - 1) * gap_y) / rows
    if min(x0, y0, panel_x, panel_y) <= 0 or x1 <= x0 or y1 <= y0:
        return False  # labels wider than the canvas: let matplotlib do what it can
    figure.set_layout_engine(PlaceHolderLayoutEngine(True, True))
    figure.subplots_adjust(
        left=x0, right=x1, bottom=y0, top=y1, wspace=gap_x / panel_x, hspace=gap_y / panel_y
    )
    if bars:
        start = x1 + (over_x + 2 * _PAD) / width
        bars[0].set_position((start, y0, bar_width / width, y1 - y0))
    for ax in axes:  # place the tick labels where they are now (what a draw would do first)
        for axis in (ax.xaxis, ax.yaxis):
            if not _bare(axis):
                axis.get_tightbbox(renderer)
    return True


def _bare(axis: Axis) -> bool:
    """An axis without ticks or label (an inner panel's in a grid labelled on its edge): nothing
    of it lies beyond its panel, so it is not measured (measuring is a grid's largest cost)."""
    return (
        not axis.get_label_text()
        and isinstance(axis.get_minor_locator(), mticker.NullLocator)
        and len(axis.get_majorticklocs()) == 0
    )


def outside_canvas(figure: Figure) -> list[str]:
    """Visible texts and legends not wholly inside the canvas (for the tests' checks and for
    :func:`make_readable`)."""
    canvas = figure.bbox
    found = []
    for artist, name in _texts_and_legends(figure):
        box = artist.get_window_extent()
        if box.width and box.height and not _inside(box, canvas):
            found.append(name)
    return found


def overlapping_tick_labels(figure: Figure) -> list[str]:
    """Pairs of visible tick labels of one axis that overlap (after ``canvas.draw()``)."""
    found = []
    for ax in figure.axes:
        for which in ("x", "y"):
            for a, b in _overlaps(_tick_labels(ax, which)):
                found.append(f"{which}: {a.get_text()!r} / {b.get_text()!r}")
    return found


def _legend_inside_or_none(ax: Axes, legend_max: int) -> None:
    legend = ax.get_legend()
    if legend is None:
        return
    texts = legend.get_texts()
    if len(texts) > legend_max:
        legend.remove()  # dozens of "Trial17" entries help nobody
        return
    handles = [handle for handle in legend.legend_handles if handle is not None]
    labels = [text.get_text() for text in texts]
    if len(handles) == len(labels):
        ax.legend(handles, labels, loc="best", fontsize="small", framealpha=0.8)


def _keep_legend_in_canvas(figure: Figure, ax: Axes) -> None:
    legend = ax.get_legend()
    if legend is not None and not _inside(legend.get_window_extent(), figure.bbox):
        legend.remove()  # pragma: no cover - "best" inside the axes always fits


def _distinct_time_ticks(ax: Axes) -> None:
    """A date axis labelled ``%H:%M:%S`` shows one second for trials of milliseconds: let
    matplotlib pick the precision the span needs (``12:00:01.250``)."""
    if isinstance(ax.xaxis.get_major_formatter(), mdates.DateFormatter):
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
        for label in ax.get_xticklabels():
            label.set_rotation(0)
            label.set_horizontalalignment("center")


def _few_ticks(ax: Axes) -> None:
    for axis in (ax.xaxis, ax.yaxis):
        if isinstance(axis.get_major_locator(), mticker.MaxNLocator | mticker.AutoLocator):
            axis.set_major_locator(mticker.MaxNLocator(nbins=3))
    if isinstance(ax.xaxis.get_major_locator(), mticker.FixedLocator):
        _turn(ax.get_xticklabels())  # names (categorical choices): upright, side by side


def _label_outer_panels(axes: list[Axes]) -> None:
    """In a grid whose columns share their x axis (same limits and scale) and rows their y axis,
    label only the bottom row's x axes and the left column's y axes, as ``sharex``/``sharey``
    would: the same figure with a quarter of the texts to lay out and draw (the cost of a grid).
    A column or row whose panels differ keeps every label."""
    grid: dict[tuple[int, int], Axes] = {}
    for ax in axes:
        spec = ax.get_subplotspec()
        if (
            spec is None
            or spec.rowspan.stop - spec.rowspan.start != 1
            or spec.colspan.stop - spec.colspan.start != 1
        ):
            continue
        grid[spec.rowspan.start, spec.colspan.start] = ax
    rows = sorted({row for row, _ in grid})
    columns = sorted({column for _, column in grid})
    for column in columns:
        panels = [grid[row, column] for row in rows if (row, column) in grid]
        if _shared(panels, "x"):
            for ax in panels[:-1]:
                ax.tick_params(axis="x", labelbottom=False)
                ax.set_xlabel("")
    for row in rows:
        panels = [grid[row, column] for column in columns if (row, column) in grid]
        if _shared(panels, "y"):
            for ax in panels[1:]:
                ax.tick_params(axis="y", labelleft=False)
                ax.set_ylabel("")


def _shared(panels: list[Axes], which: str) -> bool:
    """Panels whose ``which`` axes show the same thing: scale, limits, ticks and their format."""
    if len(panels) < 2:
        return False

    def signature(ax: Axes) -> tuple[Any, ...]:
        axis = ax.xaxis if which == "x" else ax.yaxis
        lim = ax.get_xlim() if which == "x" else ax.get_ylim()
        formatter = axis.get_major_formatter()
        return (
            axis.get_scale(),
            tuple(round(float(v), 9) for v in lim),
            tuple(axis.get_majorticklocs()),
            type(formatter),
            tuple(getattr(formatter, "seq", ())),
        )

    first = signature(panels[0])
    return all(signature(ax) == first for ax in panels[1:])


def _thin_overlapping(ax: Axes, which: str) -> bool:
    """Halve the tick labels of an axis whose labels overlap; True when something changed."""
    labels = _tick_labels(ax, which)
    if not any(True for _ in _overlaps(labels)):
        return False
    axis = ax.xaxis if which == "x" else ax.yaxis
    locator = axis.get_major_locator()
    if isinstance(locator, mticker.MaxNLocator | mticker.AutoLocator) and len(labels) > 2:
        axis.set_major_locator(mticker.MaxNLocator(nbins=max(2, len(labels) // 2)))
        return True
    if which == "x" and any(label.get_rotation() != 90 for label in labels):
        _turn(labels)  # names (categorical choices): turn them before leaving any out
        return True
    for label in labels[1::2]:
        label.set_visible(False)
    return True


def _turn(labels: list[Text]) -> None:
    for label in labels:
        label.set_rotation(90)
        label.set_horizontalalignment("center")
        label.set_fontsize("small")


def _tick_labels(ax: Axes, which: str) -> list[Text]:
    labels = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    axis = ax.xaxis if which == "x" else ax.yaxis
    ticks = axis.get_majorticklocs()
    shown = []
    for label, tick in zip(labels, ticks, strict=False):
        if label.get_visible() and label.get_text() and lo - 1e-9 <= tick <= hi + 1e-9:
            shown.append(label)
    return shown


def _overlaps(labels: list[Text]) -> Iterator[tuple[Text, Text]]:
    boxes = [label.get_window_extent() for label in labels]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if boxes[i].overlaps(boxes[j]):
                yield labels[i], labels[j]


def _texts_and_legends(figure: Figure) -> Iterator[tuple[Any, str]]:
    suptitle = getattr(figure, "_suptitle", None)  # matplotlib has no getter for it
    if suptitle is not None and suptitle.get_text():
        yield suptitle, "suptitle"
    for ax in figure.axes:
        if not ax.get_visible():
            continue
        legend = ax.get_legend()
        if legend is not None:
            yield legend, f"legend of {ax.get_title() or 'axes'}"
        for which in ("x", "y"):
            for label in _tick_labels(ax, which):
                yield label, f"{which} tick label {label.get_text()!r}"
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if text.get_visible() and text.get_text():
                yield text, f"label {text.get_text()!r}"


def _inside(box: BboxBase, canvas: BboxBase, slack: float = 1.0) -> bool:
    return bool(
        box.x0 >= canvas.x0 - slack
        and box.y0 >= canvas.y0 - slack
        and box.x1 <= canvas.x1 + slack
        and box.y1 <= canvas.y1 + slack
    )
