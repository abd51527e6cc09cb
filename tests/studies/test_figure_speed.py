"""What keeps figures fast (``bridge_worker.studies.figures``): the drawing process reads the trials
as stored, the grid figures are laid out without constrained layout's repeated measuring, an image
is drawn once, and the contour interpolates each pair of params once on a coarse grid and ticks
only its edges. No test here reads a wall clock: counts, and a CPU-time ratio to another figure
measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import matplotlib
import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bridge_worker.studies import figure_contour, figures
from tests.helpers import figure_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.mark.parametrize(
    "kind",
    ["timeline", "optimization_history", "intermediate_values", "param_importances", "contour"],
)
def test_drawing_reads_the_trials_it_is_given_and_never_copies_them(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Optuna's timeline and history read ``study.trials`` (a deep copy: ~0.4 s of 1000 trials),
    and loading trials into an in-memory study cost ~0.3 ms each."""
    study = figure_study(30)
    trials = study.get_trials(deepcopy=False)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the drawing read the storage's trials")

    monkeypatch.setattr(InMemoryStorage, "get_all_trials", refused)
    monkeypatch.setattr(InMemoryStorage, "get_trial", refused)
    request = figures.FigureRequest(kind=kind, format="png", width=300, height=200)  # type: ignore[arg-type]
    kwargs = figures._arguments(study, request, None)
    drawn = figures._StudyOfTrials(list(study.directions), trials)
    assert drawn.trials is trials
    assert drawn.get_trials(states=(TrialState.COMPLETE,)) == trials
    assert drawn.get_trials(states=(TrialState.RUNNING,)) == []
    assert figures._draw(request, drawn, kwargs).startswith(b"\x89PNG")


def _drawing(study: optuna.Study, kind: str, fmt: str = "png") -> Callable[[], bytes]:
    """What the drawing process runs for ``kind`` (in this process, to be counted and timed)."""
    request = figures.FigureRequest(kind=kind, format=fmt, width=900, height=600)  # type: ignore[arg-type]
    kwargs = figures._arguments(study, request, None)
    shown, kwargs, _ = figures._bounded(request, study.get_trials(deepcopy=False), kwargs)
    figures._preload(request)
    drawn = figures._StudyOfTrials(list(study.directions), shown)
    return lambda: figures._draw(request, drawn, kwargs)


@pytest.fixture(scope="module")
def thousand() -> optuna.Study:
    return figure_study(1000)


def test_a_contour_interpolates_each_pair_once_on_a_coarse_grid(
    thousand: optuna.Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 params: 12 panels, 6 pairs; the mirrored panel transposes its pair's solution, and the
    grid is 50 x 50 (Optuna's 100 x 100 has four times the unknowns)."""
    solved: list[int] = []
    solve = figure_contour._solve

    def counted(zmap: dict[tuple[int, int], float], n: int) -> Any:
        solved.append(n)
        return solve(zmap, n)

    monkeypatch.setattr(figure_contour, "_solve", counted)
    assert _drawing(thousand, "contour")().startswith(b"\x89PNG")
    assert solved == [figure_contour.GRID] * 6
    assert figure_contour.GRID <= 50


def test_a_contour_grid_has_ticks_on_its_edges_only(thousand: optuna.Study) -> None:
    """Ticks are most of a grid's cost (each one a mark, a grid line and a label laid out and
    drawn): the inner panels, labelled by the grid's edge, have none."""
    request = figures.FigureRequest(kind="contour", format="png", width=900, height=600)
    kwargs = figures._arguments(thousand, request, None)
    shown, kwargs, _ = figures._bounded(request, thousand.get_trials(deepcopy=False), kwargs)
    figure = figures.build_matplotlib_figure(
        request, {**kwargs, "study": figures._StudyOfTrials(list(thousand.directions), shown)}
    )
    try:
        panels = [ax for ax in figure.axes if ax.get_subplotspec() is not None]
        assert len(panels) == 16
        for ax in panels:
            spec = ax.get_subplotspec()
            assert bool(len(ax.xaxis.get_majorticklocs())) == spec.is_last_row()
            assert bool(len(ax.yaxis.get_majorticklocs())) == spec.is_first_col()
    finally:
        plt.close(figure)


@pytest.mark.parametrize("kind", ["contour", "optimization_history", "slice", "timeline"])
@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_a_laid_out_figure_is_drawn_once_to_print_it(
    kind: str, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``savefig`` drew a figure with a layout engine twice (a layout pass, then the print), and
    :mod:`bridge_worker.studies.figure_layout` has laid it out already."""
    study = figure_study(40)
    request = figures.FigureRequest(kind=kind, format=fmt, width=900, height=600)  # type: ignore[arg-type]
    kwargs = figures._arguments(study, request, None)
    figure = figures.build_matplotlib_figure(request, kwargs)
    draws: list[int] = []
    draw = Figure.draw

    def counted(self: Figure, renderer: Any) -> None:
        draws.append(1)
        draw(self, renderer)

    monkeypatch.setattr(Figure, "draw", counted)
    try:
        assert figures._print(figure, request.format)
    finally:
        plt.close(figure)
    assert len(draws) == 1


def test_a_contour_costs_a_few_history_figures(thousand: optuna.Study) -> None:
    """The contour of 1000 trials x 4 params costs at most 4 times the optimization history of
    the same study, both measured here, in CPU seconds (best of 3, alternating), so the load of
    the machine weighs on both alike. Optuna's contour, as this worker drew it before, cost 5
    times the history (the history itself drawn twice then); this one ~3 times."""
    contour, history = _drawing(thousand, "contour"), _drawing(thousand, "optimization_history")
    best = {"contour": float("inf"), "history": float("inf")}
    for _ in range(3):
        for name, draw in (("contour", contour), ("history", history)):
            started = time.process_time()
            draw()
            best[name] = min(best[name], time.process_time() - started)
    assert best["contour"] <= 4 * best["history"], best


@pytest.mark.parametrize("kind", ["slice", "rank", "contour"])
def test_an_svg_draws_its_crowds_of_dots_as_images(thousand: optuna.Study, kind: str) -> None:
    """A thousand vector dots a panel were most of a slice's or rank's ~0.7 MiB SVG (and the
    contour's surfaces, 1.7 MiB): they are images; texts and axes stay vectors."""
    svg = _drawing(thousand, kind, "svg")()
    assert svg.count(b"<image") >= 1
    assert svg.count(b"<use") < 1000  # a vector scatter is one <use> a dot (4000 here)
    assert svg.count(b"<text") + svg.count(b'<g id="text_') > 10
    assert len(svg) < 500 * 1024
