"""CMA-ES with its saved optimizer read by an allow-list unpickler, never by ``pickle.loads``.

Optuna's CmaEsSampler keeps its optimizer between asks as a hex-encoded pickle in a trial system
attr (``cma:optimizer:0``, ...) and restores it with ``pickle.loads`` at every ask. Whoever can
write that attr (anyone with write access to the storage, or to a proxy in front of it) can
therefore run code in every worker that next asks the study. Here the same bytes are read by an
unpickler that can only build what the ``cmaes`` package's optimizers consist of (their classes,
numpy arrays, dtypes and scalars); anything else is refused, logged (``cmaes_state_refused``),
and that trial's state is skipped as if it had none (the sampler then uses an older saved state,
or starts afresh). Checked by
``tests/studies/test_cmaes_state.py`` with a pickle that would run code.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import optuna
import structlog

_log = structlog.get_logger("bridge_worker.studies.cmaes_state")

ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2
        ("numpy.core.multiarray", "scalar"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
    }
)
"""What a pickled ``cmaes`` optimizer refers to besides the package's own classes."""

_CMAES_CLASSES = frozenset({"CMA", "SepCMA", "CMAwM"})


class RefusedPickle(pickle.UnpicklingError):
    """The saved state names something a CMA-ES optimizer never holds."""


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = (module, name) in ALLOWED_GLOBALS or (
            module.split(".")[0] == "cmaes" and name in _CMAES_CLASSES
        )
        if not allowed:
            raise RefusedPickle(f"{module}.{name} is not part of a CMA-ES optimizer")
        return super().find_class(module, name)


def load_optimizer(data: bytes) -> Any:
    """Unpickle a saved optimizer, refusing anything but the allow-listed globals."""
    return _AllowListUnpickler(io.BytesIO(data)).load()


class SafeCmaEsSampler(optuna.samplers.CmaEsSampler):
    """Optuna's CmaEsSampler whose saved optimizer is read by :func:`load_optimizer`."""

    def _restore_optimizer(self, completed_trials: list[optuna.trial.FrozenTrial]) -> Any:
        for trial in reversed(completed_trials):
            attrs = {
                key: value
                for key, value in trial.system_attrs.items()
                if key.startswith(self._attr_key_optimizer)
            }
            if not attrs:
                continue
            try:
                return load_optimizer(bytes.fromhex(self._concat_optimizer_attrs(attrs)))
            except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError) as exc:
                _log.warning(
                    "cmaes_state_refused", trial=trial.number, error=f"{type(exc).__name__}: {exc}"
                )
        return None
