"""What the operator chose about artifacts (``--artifacts DIR``, ``--artifact-upload-timeout``).

Kept apart from :mod:`bridge_worker.studies.artifacts` so the command line is parsed without
importing Optuna."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_UPLOAD_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class ArtifactOptions:
    directory: Path | None = None
    """``--artifacts DIR``; None: artifacts are not configured (``not_configured``)."""
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT
    """Seconds an unfinished upload may wait for its next chunk before it is discarded."""
