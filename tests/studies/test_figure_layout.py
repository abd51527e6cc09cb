"""Every figure kind, drawn at the default size, can be read: nothing outside the canvas, no tick
labels on top of each other, a timeline's ticks distinct
(``bridge_worker.studies.figure_layout``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import matplotlib
import optuna
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from optuna.visualization.matplotlib import _contour

from bridge_worker.studies import figure_contour, figure_layout, figures
from bridge_worker.studies.figures import FOR_ONE_OBJECTIVE
from tests.helpers import figure_study

OPTUNAS_INTERPOLATION = _contour._interpolate_zmap
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

MULTI = {"pareto_front": {}, "hypervolume_history": {"reference_point": [10.0, 10.0]}}


def _multi_study() -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"])
    for i in range(30):
        x = i / 5 - 3
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x},
                distributions={"x": optuna.distributions.FloatDistribution(-3, 3)},
                values=[x * x, (x - 1) ** 2],
            )
        )
    return study


@pytest.fixture(scope="module")
def single() -> Iterator[optuna.Study]:
    yield figure_study(40)


def _figure(study: optuna.Study, kind: str, **extra: Any) -> Any:
    request = figures.FigureRequest(
        kind=kind,
        format="png",
        width=900,
        height=600,  # type: ignore[arg-type]
        **extra,
    )
    kwargs = figures._arguments(study, request, None)
    _, kwargs, _ = figures._bounded(request, study.get_trials(deepcopy=False), kwargs)
    figure = figures.build_matplotlib_figure(request, kwargs)
    figure.draw_without_rendering()
    return figure


@pytest.mark.parametrize("kind", FOR_ONE_OBJECTIVE)
def test_every_kind_fits_its_canvas_and_its_tick_labels_do_not_overlap(
    single: optuna.Study, kind: str
) -> None:
    figure = _figure(single, kind)
    try:
        assert tuple(figure.bbox.size) == (900, 600)
        assert figure_layout.outside_canvas(figure) == []
        assert figure_layout.overlapping_tick_labels(figure) == []
    finally:
        plt.close(figure)


@pytest.mark.parametrize("kind", sorted(MULTI))
def test_multi_objective_kinds_fit_too(kind: str) -> None:
    figure = _figure(_multi_study(), kind, **MULTI[kind])
    try:
        assert figure_layout.outside_canvas(figure) == []
        assert figure_layout.overlapping_tick_labels(figure) == []
    finally:
        plt.close(figure)


def test_timeline_ticks_of_millisecond_trials_are_distinct(single: optuna.Study) -> None:
    figure = _figure(single, "timeline")
    try:
        (ax,) = [ax for ax in figure.axes if ax.get_title()]
        labels = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
        assert len(labels) >= 2
        assert len(set(labels)) == len(labels), labels
    finally:
        plt.close(figure)


def test_a_legend_of_many_trials_is_left_out(single: optuna.Study) -> None:
    figure = _figure(single, "intermediate_values")
    try:
        assert all(ax.get_legend() is None for ax in figure.axes)
    finally:
        plt.close(figure)


def test_the_fast_contour_interpolation_solves_optunas_system() -> None:
    import numpy as np

    original = OPTUNAS_INTERPOLATION
    assert original is not figure_contour.interpolate
    rng = random.Random(5)
    zmap = {(rng.randrange(30), rng.randrange(30)): rng.uniform(-1, 1) for _ in range(40)}
    assert np.allclose(figure_contour.interpolate(zmap, 30), original(zmap, 30))


@pytest.mark.parametrize("kind", sorted(figures.GRID_KINDS))
def test_a_grid_labels_its_shared_axes_once(single: optuna.Study, kind: str) -> None:
    """Columns of a params x params grid share their x axis and rows their y axis: only the
    bottom row and the left column carry tick and axis labels (a quarter of the texts to lay
    out)."""
    figure = _figure(single, kind)
    try:
        panels = [
            ax
            for ax in figure.axes
            if ax.get_subplotspec() is not None
            and ax.get_subplotspec().get_gridspec().get_geometry() == (4, 4)
        ]
        assert len(panels) == 16
        for ax in panels:
            spec = ax.get_subplotspec()
            x_labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
            y_labels = [t for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
            assert bool(x_labels) == spec.is_last_row(), (kind, spec.rowspan, spec.colspan)
            assert bool(y_labels) == spec.is_first_col(), (kind, spec.rowspan, spec.colspan)
            assert bool(ax.get_xlabel()) == spec.is_last_row()
            assert bool(ax.get_ylabel()) == spec.is_first_col()
        assert {ax.get_xlabel() for ax in panels if ax.get_subplotspec().is_last_row()} == {
            "layers",
            "lr",
            "optimizer",
            "x",
        }
        texts = [
            (ax, text.get_window_extent())
            for ax in figure.axes
            for text in [
                *figure_layout._tick_labels(ax, "x"),
                *figure_layout._tick_labels(ax, "y"),
                ax.xaxis.label,
                ax.yaxis.label,
                ax.title,
            ]
            if text.get_visible() and text.get_text()
        ]
        for ax, box in texts:  # nothing of one panel on another panel or its labels
            assert not any(other is not ax and box.overlaps(other.bbox) for other in figure.axes)
            assert not any(other is not ax and box.overlaps(box2) for other, box2 in texts)
    finally:
        plt.close(figure)


def test_a_mirrored_contour_panel_is_the_transposed_solution() -> None:
    import numpy as np

    rng = random.Random(6)
    zmap = {(rng.randrange(30), rng.randrange(30)): rng.uniform(-1, 1) for _ in range(40)}
    mirrored = {(y, x): z for (x, y), z in zmap.items()}
    solved: dict[Any, Any] = {}
    first = figure_contour.interpolate(zmap, 30, solved)
    assert len(solved) == 1
    second = figure_contour.interpolate(mirrored, 30, solved)
    assert len(solved) == 1  # not solved again: the first solution, transposed
    assert np.allclose(second, OPTUNAS_INTERPOLATION(mirrored, 30))
    assert np.allclose(second, first.T)
