"""Artifacts: files per trial and per study, stored exactly as Optuna's ``upload_artifact`` stores
them (a ``FileSystemArtifactStore`` directory plus an ``artifacts:<id>`` system attr holding the
``ArtifactMeta`` JSON), so optuna-dashboard started on the same storage and ``--artifact-dir``
shows them.

Uploads arrive in chunks (``artifact_put``), each appended to a part file under
``DIR/.optuna-bridge-uploads``; only the final chunk, once the whole file's sha256 matches, makes an
artifact: the part file is renamed into the store (atomic on one filesystem) and *then* the meta
attr is written. Optuna's own ``upload_artifact`` writes the attr first, so a kill in the middle
could list a partial file; this order means a worker killed at any point leaves nothing listed
(at worst an orphan file no attr names). An upload with no chunk for ``--artifact-upload-timeout``
seconds is discarded (checked at every artifact frame; part files of dead workers older than the
timeout are removed at start-up).

This module is the one place that knows Optuna's artifact attr format (``ARTIFACTS_ATTR_PREFIX``,
``ArtifactMeta``); ``tests/studies/test_artifacts.py`` pins it against ``upload_artifact`` itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from bridge_worker.studies.artifact_options import ArtifactOptions
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params

ARTIFACTS_ATTR_PREFIX = "artifacts:"
"""Optuna's system attr prefix for an artifact's meta (``optuna.artifacts._upload``; pinned by
``tests/studies/test_artifacts.py``): a constant here so a worker that never stores an artifact
does not import ``optuna.artifacts`` and its cloud back-ends at start."""
UPLOADS = ".optuna-bridge-uploads"
CHECKSUM_ATTR_PREFIX = "optuna_bridge:artifact:"
"""System attr (next to Optuna's meta) holding ``{"sha256", "size"}`` of an artifact."""


@dataclass(slots=True)
class _Upload:
    path: Path
    size: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    touched: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Stored:
    artifact_id: str
    name: str
    content_type: str
    size: int
    sha256: str | None
    number: int | None


def not_configured() -> BridgeError:
    return BridgeError(
        ErrorKind.NOT_CONFIGURED,
        "artifacts are not enabled on this worker: start it with --artifacts DIR",
        feature="artifacts",
    )


class ArtifactKeeper:
    """Artifact uploads in progress and the store; one per worker (the registry holds it)."""

    def __init__(self, options: ArtifactOptions | None = None) -> None:
        self.options = options or ArtifactOptions()
        self._uploads: dict[tuple[int, int | None, str], _Upload] = {}
        if self.options.directory is not None:
            self.options.directory.mkdir(parents=True, exist_ok=True)
            (self.options.directory / UPLOADS).mkdir(exist_ok=True)
            self._remove_stale_parts()

    @property
    def directory(self) -> Path:
        if self.options.directory is None:
            raise not_configured()
        return self.options.directory

    def put(
        self,
        storage: Any,
        study_id: int,
        owner: FrozenTrial | None,
        name: str,
        chunk: bytes,
        offset: int,
        final: bool,
        sha256: str | None,
        content_type: str,
        max_bytes: int,
    ) -> tuple[int, str | None, str | None]:
        """Append a chunk; on ``final`` store the artifact. Returns (size so far, artifact id,
        sha256), the last two only when stored."""
        directory = self.directory
        self.sweep()
        check_name(name)
        number = None if owner is None else owner.number
        key = (study_id, number, name)
        upload = self._uploads.get(key)
        if offset == 0:
            if upload is not None:
                self._discard(key)
            upload = _Upload(directory / UPLOADS / f"{secrets.token_hex(16)}.part")
            upload.path.touch()
            self._uploads[key] = upload
        elif upload is None or upload.size != offset:
            expected = 0 if upload is None else upload.size
            raise invalid_params(
                "$.params.offset",
                f"chunk at offset {offset}, expected {expected}",
                expected=expected,
            )
        if offset + len(chunk) > max_bytes:
            self._discard(key)
            raise BridgeError(
                ErrorKind.LIMIT_EXCEEDED,
                f"artifact of more than {max_bytes} bytes (--max-artifact-bytes)",
                limit="max_artifact_bytes",
                value=offset + len(chunk),
                max=max_bytes,
            )
        with upload.path.open("ab") as part:
            part.write(chunk)
        upload.size += len(chunk)
        upload.hasher.update(chunk)
        upload.touched = time.monotonic()
        if not final:
            return upload.size, None, None
        digest = upload.hasher.hexdigest()
        self._uploads.pop(key)
        if sha256 is None or digest != sha256.lower():
            upload.path.unlink(missing_ok=True)
            raise invalid_params(
                "$.params.sha256",
                "the file's sha256 does not match; nothing was stored",
                reason="sha256_mismatch",
                sha256=digest,
            )
        artifact_id = str(uuid.uuid4())
        os.replace(upload.path, directory / artifact_id)  # complete before it is named
        from optuna.artifacts._upload import ArtifactMeta

        meta = ArtifactMeta(
            artifact_id=artifact_id, filename=name, mimetype=content_type, encoding=None
        )
        record = {
            ARTIFACTS_ATTR_PREFIX + artifact_id: json.dumps(dataclasses.asdict(meta)),
            CHECKSUM_ATTR_PREFIX + artifact_id: {"sha256": digest, "size": upload.size},
        }
        try:
            for key_, value in reversed(record.items()):  # Optuna's meta last: it names it
                if owner is None:
                    storage.set_study_system_attr(study_id, key_, value)
                else:
                    storage.set_trial_system_attr(owner._trial_id, key_, value)
        except BaseException:
            (directory / artifact_id).unlink(missing_ok=True)
            raise
        return upload.size, artifact_id, digest

    def listed(self, study: optuna.Study, trials: list[FrozenTrial] | None) -> list[Stored]:
        """The study's own artifacts (``trials`` None: and every trial's), or those trials'."""
        self.directory  # noqa: B018 - not_configured before anything is read
        owners: list[tuple[dict[str, Any], int | None]] = []
        if trials is None:
            owners.append((study._storage.get_study_system_attrs(study._study_id), None))
            trials = study.get_trials(deepcopy=False)
        owners += [(t.system_attrs, t.number) for t in trials]
        found = []
        for attrs, number in owners:
            for key, raw in attrs.items():
                if not key.startswith(ARTIFACTS_ATTR_PREFIX):
                    continue
                meta = json.loads(raw)
                artifact_id = meta["artifact_id"]
                checksum = attrs.get(CHECKSUM_ATTR_PREFIX + artifact_id) or {}
                path = self.directory / artifact_id
                if not path.is_file():
                    continue
                found.append(
                    Stored(
                        artifact_id,
                        meta["filename"],
                        meta["mimetype"],
                        path.stat().st_size,
                        checksum.get("sha256"),
                        number,
                    )
                )
        return found

    def read(self, stored: Stored, offset: int, limit: int) -> tuple[bytes, bool]:
        with (self.directory / stored.artifact_id).open("rb") as f:
            f.seek(offset)
            data = f.read(limit)
        return data, offset + len(data) >= stored.size

    def sweep(self) -> None:
        """Discard uploads that got no chunk for the upload timeout."""
        deadline = time.monotonic() - self.options.upload_timeout
        for key in [k for k, u in self._uploads.items() if u.touched < deadline]:
            self._discard(key)

    def pending(self) -> int:
        return len(self._uploads)

    def _discard(self, key: tuple[int, int | None, str]) -> None:
        upload = self._uploads.pop(key, None)
        if upload is not None:
            upload.path.unlink(missing_ok=True)

    def _remove_stale_parts(self) -> None:
        cutoff = time.time() - self.options.upload_timeout
        for part in (self.directory / UPLOADS).glob("*.part"):
            with contextlib.suppress(OSError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()


def check_name(name: str) -> None:
    """A name is a label shown by the dashboard, never a path."""
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise invalid_params(
            "$.params.name", "an artifact name is a label: no '/', '\\', NUL, '.' or '..'"
        )
