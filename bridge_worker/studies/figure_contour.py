"""The matplotlib contour figure, drawn here instead of by Optuna's ``plot_contour``.

Optuna's matplotlib contour costs more than every other figure together at 4 params (12 panels):
it interpolates each panel on a 100 x 100 grid with a system built cell by cell in Python,
draws 15 contour lines and 15 filled levels per panel, and measures every panel while laying
out. This module draws the same figure (the same data, axes, colours and dots, from Optuna's
``_get_contour_info``) with one interpolation per pair of parameters on a coarse grid, solved
with numpy and scipy and shared with the mirrored panel, fewer levels whose edges are the level
lines (one contour set a panel, not two), no ticks on the inner panels (ticks were most of the
grid's cost), and the surfaces and dots rasterized in SVG (vector polygons of every level made a
1.7 MiB SVG). It knows nothing of the protocol; :mod:`bridge_worker.studies.figures` calls it and
:mod:`bridge_worker.studies.figure_layout` lays the figure out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.contour import QuadContourSet
from matplotlib.figure import Figure
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.visualization._contour import _AxisInfo, _get_contour_info, _SubContourInfo

GRID = 50
"""Points per axis of the grid a panel is interpolated on (Optuna's: 100). At 900 x 600 a panel
of a 4-param figure is ~150 pixels wide: 3 pixels a point, the surface looks the same."""
LEVELS = 10
"""Filled levels (and lines between them) per panel (Optuna's: 15): a panel of ~150 pixels shows
no more, and each level is a set of polygons to draw."""
_SOLVED_MAX = 128
"""Panels whose solution is kept for their mirrors: more than one grid has at
--max-plot-panels' default (100): a bound, never reached."""


def plot_contour(
    study: Study,
    params: list[str] | None = None,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    target_name: str = "Objective Value",
) -> Axes | np.ndarray:
    """Optuna's ``plot_contour`` (matplotlib): one Axes for two params, else an array of params
    x params Axes (empty on the diagonal) and one colorbar."""
    import matplotlib.pyplot as plt

    info = _get_contour_info(study, params, target, target_name)
    plt.style.use("ggplot")  # as Optuna's figure; ticks read the style when they are drawn
    figure = Figure()
    FigureCanvasAgg(figure)
    cmap = plt.get_cmap("Blues" if not info.reverse_scale else "Blues_r")
    n = len(info.sorted_params)
    solved: dict[Any, np.ndarray] = {}
    if n == 2:
        ax = figure.subplots()
        ax.set_title("Contour Plot")
        filled = _panel(info.sub_plot_infos[0][0], ax, cmap, solved)
        if filled is not None:
            figure.colorbar(filled, ax=ax).set_label(info.target_name)
        return ax
    axes = figure.subplots(n, n, squeeze=False)
    figure.suptitle("Contour Plot")
    first = None
    for y_i in range(n):
        for x_i in range(n):
            ax = axes[y_i, x_i]
            filled = _panel(info.sub_plot_infos[y_i][x_i], ax, cmap, solved)
            if y_i < n - 1:
                _unlabelled(ax, "x")
            if x_i > 0:
                _unlabelled(ax, "y")
            if first is None:
                first = filled
    if first is not None:
        figure.colorbar(first, ax=axes).set_label(info.target_name)
    return axes


def _panel(
    info: _SubContourInfo, ax: Axes, cmap: Colormap, solved: dict[Any, np.ndarray]
) -> QuadContourSet | None:
    """One panel: axes of both params, and (off the diagonal) the interpolated surface, its
    level lines and the trials as dots. None when it draws no surface."""
    xaxis, yaxis = info.xaxis, info.yaxis
    if len(xaxis.indices) < 2 or len(yaxis.indices) < 2:
        return None
    ax.set(xlabel=xaxis.name, ylabel=yaxis.name, xlim=xaxis.range, ylim=yaxis.range)
    for axis, which in ((xaxis, "x"), (yaxis, "y")):
        if axis.is_cat:
            labels = _categories(axis)
            getattr(ax, f"set_{which}ticks")(range(len(labels)), labels)
        else:
            getattr(ax, f"set_{which}scale")("log" if axis.is_log else "linear")
    if xaxis.name == yaxis.name:
        return None
    shown = [
        (x, y, z)
        for x, y, z in zip(xaxis.values, yaxis.values, _targets(info), strict=True)
        if x is not None and y is not None and z is not None
    ]
    if not shown:
        return None
    xs = _positions(xaxis, [x for x, _, _ in shown])
    ys = _positions(yaxis, [y for _, y, _ in shown])
    xi, yi = _grid(xaxis), _grid(yaxis)
    zmap = dict(
        zip(
            zip(_nearest(xi, xs), _nearest(yi, ys), strict=True),
            (z for _, _, z in shown),
            strict=True,
        )
    )
    zi = interpolate(zmap, GRID, solved)
    # The filled levels' edges are the contour lines: no second contour set to build and draw.
    filled = ax.contourf(
        xi,
        yi,
        zi,
        LEVELS,
        cmap=cmap,
        rasterized=True,
        edgecolors=(0.0, 0.0, 0.0, 0.5),
        antialiased=True,
    )
    filled.set_linewidth(0.4)
    constraints = info.constraints or [True] * len(xaxis.values)
    feasible = [
        c
        for x, y, c in zip(xaxis.values, yaxis.values, constraints, strict=True)
        if x is not None and y is not None
    ]
    for ok, color in ((True, "black"), (False, "#cccccc")):
        keep = np.array([c == ok for c in feasible], dtype=bool)
        if keep.any():
            ax.scatter(
                xs[keep],
                ys[keep],
                marker="o",
                c=color,
                s=12,
                edgecolors="grey",
                linewidth=1.0,
                rasterized=True,
            )
    return filled


def _unlabelled(ax: Axes, which: str) -> None:
    """An inner panel's axis: its column (or row) is labelled on the grid's edge, and a panel
    filled by its surface shows no grid lines, so it has no ticks (each costs a tick mark, a
    grid line and a label laid out and drawn: most of a grid's cost)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_ticks([])
    axis.set_label_text("")
    axis.minorticks_off()


def _targets(info: _SubContourInfo) -> list[float | None]:
    """The target of each trial (None where a param is missing), from Optuna's map of
    (x index, y index) to value."""
    x_index = {value: i for i, value in enumerate(info.xaxis.indices)}
    y_index = {value: i for i, value in enumerate(info.yaxis.indices)}
    return [
        None if x is None or y is None else info.z_values[x_index[x], y_index[y]]
        for x, y in zip(info.xaxis.values, info.yaxis.values, strict=True)
    ]


def _categories(axis: _AxisInfo) -> list[str]:
    return sorted({str(value) for value in axis.values if value is not None})


def _positions(axis: _AxisInfo, values: list[Any]) -> np.ndarray:
    """Where values sit on the axis: a category at its index among the sorted categories."""
    if axis.is_cat:
        index = {label: i for i, label in enumerate(_categories(axis))}
        return np.array([index[str(value)] for value in values], dtype=float)
    return np.array(values, dtype=float)


def _grid(axis: _AxisInfo) -> np.ndarray:
    low, high = axis.range
    if axis.is_log:
        return np.logspace(np.log10(low), np.log10(high), GRID)
    return np.linspace(low, high, GRID)


def _nearest(grid: np.ndarray, values: np.ndarray) -> list[int]:
    """Index of the grid point nearest each value (the first of two as near, as Optuna's)."""
    return [int(i) for i in np.abs(grid[None, :] - values[:, None]).argmin(axis=1)]


def interpolate(
    zmap: dict[tuple[int, int], float], n: int, solved: dict[Any, np.ndarray] | None = None
) -> np.ndarray:
    """Optuna's ``_interpolate_zmap`` (plotly.js's heatmap fill: a known cell keeps its value, an
    unknown one is the mean of its neighbours), vectorised: the same matrix, the same solution.

    The panel of (x=a, y=b) and the one of (x=b, y=a) fill transposed grids: the fill is the
    same system with its cells renumbered, so the second panel transposes the first's solution
    (half the solves of a contour grid), found in ``solved``, the solutions of one figure."""
    if solved is None:
        solved = {}
    key = (tuple(sorted(zmap.items())), n)
    mirror = (tuple(sorted(((y, x), z) for (x, y), z in zmap.items())), n)
    if mirror in solved:
        return solved[mirror].T.copy()
    solution = _solve(zmap, n)
    if len(solved) < _SOLVED_MAX:
        solved[key] = solution
    return solution


def _solve(zmap: dict[tuple[int, int], float], n: int) -> np.ndarray:
    import scipy.sparse  # type: ignore[import-untyped]
    import scipy.sparse.linalg  # type: ignore[import-untyped]

    size = n * n
    known = np.zeros(size, dtype=bool)
    b = np.zeros(size)
    for (x, y), z in zmap.items():
        known[y * n + x] = True
        b[y * n + x] = z
    index = np.arange(size)
    xs, ys = index % n, index // n
    rows = [index[known]]
    cols = [index[known]]
    data = [np.ones(int(known.sum()))]
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        inside = ~known & (xs + dx >= 0) & (xs + dx < n) & (ys + dy >= 0) & (ys + dy < n)
        cells = index[inside]
        rows += [cells, cells]
        cols += [cells, cells + dy * n + dx]
        data += [np.ones(len(cells)), -np.ones(len(cells))]
    matrix = scipy.sparse.csc_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    )
    return np.asarray(scipy.sparse.linalg.spsolve(matrix, b)).reshape((n, n))
