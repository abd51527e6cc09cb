"""How many trials (and running trials) each study holds, for ``list``.

Optuna's RDB storage counts a study's trials by loading all of them (``get_n_trials`` is
``len(get_all_trials(...))``): ``list`` of 3000 SQLite studies took 17 s and more, growing with
every stored trial. On RDB storages one grouped ``COUNT`` query answers for every study at once;
elsewhere (memory, journal: trials already in this process) the per-study count is cheap.
"""

from __future__ import annotations

from optuna.storages import BaseStorage
from optuna.trial import TrialState

from bridge_worker.storage.backend import opened_by


def count_all(storage: BaseStorage, hidden_prefix: str) -> dict[int, tuple[int, int]] | None:
    """``{study_id: (n_trials, n_running)}`` for every study whose name does not start with
    ``hidden_prefix``, in one read where the backend can (RDB storages: one grouped query, one
    snapshot); None for other storages (count per study with :func:`count_one`)."""
    return opened_by(storage).count_trials(storage, hidden_prefix)


def count_one(storage: BaseStorage, study_id: int) -> tuple[int, int]:
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    return storage.get_n_trials(study_id), len(running)
