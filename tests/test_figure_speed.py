"""What keeps figures fast (``bridge_worker.figures``): the drawing process reads the trials as
stored, and the grid figures are laid out without constrained layout's repeated measuring."""

from __future__ import annotations

from typing import Any

import matplotlib
import optuna
import pytest
from optuna.storages import InMemoryStorage

matplotlib.use("Agg")

from bridge_worker import figures
from tests.test_figure_layout import _single_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.mark.parametrize("kind", ["timeline", "optimization_history"])
def test_drawing_never_deep_copies_the_trials(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Optuna's timeline and history read ``study.trials`` (a deep copy: ~0.4 s of 1000 trials)."""
    study = _single_study(30)
    copies: list[bool] = []
    original = InMemoryStorage.get_all_trials

    def recording(self: InMemoryStorage, study_id: int, deepcopy: bool = True,
                  states: Any = None) -> list[optuna.trial.FrozenTrial]:
        copies.append(deepcopy)
        return original(self, study_id, deepcopy=deepcopy, states=states)

    monkeypatch.setattr(InMemoryStorage, "get_all_trials", recording)
    request = figures.FigureRequest(kind=kind, format="png", width=300, height=200)  # type: ignore[arg-type]
    kwargs = figures._arguments(study, request, None)
    image = figures._draw(request, study, kwargs)
    assert image.startswith(b"\x89PNG")
    assert copies and not any(copies)
