"""How many trials (and running trials) each study holds, for ``list``.

Optuna's RDB storage counts a study's trials by loading all of them (``get_n_trials`` is
``len(get_all_trials(...))``): ``list`` of 3000 SQLite studies took 17 s and more, growing with
every stored trial. On RDB storages one grouped ``COUNT`` query answers for every study at once;
elsewhere (memory, journal: trials already in this process) the per-study count is cheap.
"""

from __future__ import annotations

from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState


def count_all(storage: BaseStorage, hidden_prefix: str) -> dict[int, tuple[int, int]] | None:
    """``{study_id: (n_trials, n_running)}`` for every study of an RDB storage whose name does
    not start with ``hidden_prefix``, in one query (one snapshot: a study being deleted, hidden
    under that prefix before its trials are removed, is either counted whole or absent); None for
    other storages (count per study with :func:`count_one`)."""
    if not isinstance(storage, RDBStorage):
        return None
    # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trial, study = models.TrialModel, models.StudyModel
    counts: dict[int, tuple[int, int]] = {}
    with _create_scoped_session(storage.scoped_session) as session:
        rows = (
            session.query(study.study_id, trial.state, sqlalchemy.func.count(trial.trial_id))
            .outerjoin(trial, trial.study_id == study.study_id)
            .filter(sqlalchemy.not_(study.study_name.startswith(hidden_prefix, autoescape=True)))
            .group_by(study.study_id, trial.state)
            .all()
        )
    for study_id, state, count in rows:
        total, running = counts.get(int(study_id), (0, 0))
        running += int(count) if state == TrialState.RUNNING else 0
        counts[int(study_id)] = (total + int(count), running)
    return counts


def count_one(storage: BaseStorage, study_id: int) -> tuple[int, int]:
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    return storage.get_n_trials(study_id), len(running)
