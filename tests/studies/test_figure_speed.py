"""What keeps figures fast (``bridge_worker.studies.figures``): the drawing process reads the trials
as stored, and the grid figures are laid out without constrained layout's repeated measuring."""

from __future__ import annotations

from typing import Any

import matplotlib
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

matplotlib.use("Agg")

from bridge_worker.studies import figures
from tests.helpers import figure_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.mark.parametrize("kind", ["timeline", "optimization_history", "intermediate_values",
                                  "param_importances", "contour"])
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
