"""Studies as snapshots: a checkpoint a parent can hold and give back to any worker.

A snapshot is plain JSON (no pickle, no code): format name, version, the study's body and a SHA-256
checksum of the body's canonical encoding. The checksum only catches damage: anyone can recompute
it. A worker given an operator key (``--snapshot-key FILE``) signs what it exports (HMAC-SHA256,
``signature``) and imports only snapshots signed with that key. Canonical means sorted keys, no
whitespace and msgspec's shortest round-trip floats, so one logical study always exports the
same bytes and export → import → export is byte-identical. Pickles never enter or leave:
CMA-ES's optimizer state, a pickle in Optuna's trial attrs, is not exported and is refused on
import.

Reading one checks, in order: the envelope's shape, the version, the checksum, the signature (with
a key), the body's shape, and that every trial is one Optuna would accept; only then is anything
written, so a bad snapshot leaves every existing study untouched. The import handler then holds
the body to the operator's limits (:mod:`bridge_worker.studies.import_limits`).

A pure format module: it encodes and decodes, and never reads or writes a storage. The registry
(:meth:`~bridge_worker.studies.registry.StudyRegistry.snapshot_body`,
:meth:`~bridge_worker.studies.registry.StudyRegistry.restore`) turns a served study into a body and
a read body back into a study.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from typing import Any

import msgspec
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from bridge_worker.studies.convert import STATE_NAMES, STATES_BY_NAME, iso
from bridge_worker.studies.space import check_value, to_distribution, to_spec
from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.schema import (
    SNAPSHOT_FORMAT,
    SNAPSHOT_VERSION,
    Snapshot,
    SnapshotBody,
    SnapshotTrial,
)

PICKLED_ATTR = re.compile(r"^[a-z-]*cma[a-z]*:optimizer")
"""Trial system attrs where Optuna's CMA-ES keeps its optimizer as a hex-encoded pickle. They are
left out of snapshots and refused on import: unpickling data from a frame could run code."""


SIGNATURE_PREFIX = "hmac-sha256:"


def canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def checksum(body: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def signature(document: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 with the operator's key over the canonical document without its signature:
    unlike the checksum, only a holder of the key can make it."""
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return SIGNATURE_PREFIX + hmac.new(key, canonical(unsigned), hashlib.sha256).hexdigest()


# ---- export ---------------------------------------------------------------------------------


def encode_snapshot(body: SnapshotBody, key: bytes | None = None) -> bytes:
    """The canonical snapshot document of ``body``, signed when the operator gave a key."""
    plain_body = msgspec.to_builtins(body, str_keys=True)  # JSON keys: steps as strings
    document: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "checksum": checksum(plain_body),
        "body": plain_body,
    }
    if key is not None:
        document["signature"] = signature(document, key)
    return canonical(document)


def snapshot_trial(trial: FrozenTrial) -> SnapshotTrial:
    """A stored trial as a snapshot holds it (never a pickled CMA-ES optimizer)."""
    system_attrs = {k: v for k, v in trial.system_attrs.items() if not PICKLED_ATTR.match(k)}
    return SnapshotTrial(
        number=trial.number,
        state=STATE_NAMES[trial.state],
        params=trial.params,
        distributions={name: to_spec(d) for name, d in trial.distributions.items()},
        values=trial.values,
        intermediate_values=trial.intermediate_values,
        user_attrs=trial.user_attrs,
        system_attrs=system_attrs,
        datetime_start=iso(trial.datetime_start),
        datetime_complete=iso(trial.datetime_complete),
    )


# ---- import ---------------------------------------------------------------------------------


def read_snapshot(raw: bytes, key: bytes | None = None) -> tuple[SnapshotBody, list[FrozenTrial]]:
    """Validate a snapshot completely and build the trials Optuna will store. With the
    operator's ``key``, only a snapshot signed with it is read."""
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _invalid("bad_shape", f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _invalid("bad_shape", "a snapshot is a JSON object")
    if document.get("format") != SNAPSHOT_FORMAT:
        raise _invalid("bad_shape", f"not an {SNAPSHOT_FORMAT} document (format field)")
    version = document.get("version")
    if version != SNAPSHOT_VERSION:
        raise _invalid(
            "version_mismatch",
            f"snapshot version {version!r}; this worker reads version {SNAPSHOT_VERSION}",
            version=version if isinstance(version, int) else None,
            supported=[SNAPSHOT_VERSION],
        )
    if "body" not in document or not isinstance(document.get("checksum"), str):
        raise _invalid("bad_shape", "a snapshot needs body and checksum")
    if checksum(document["body"]) != document["checksum"]:
        raise _invalid("corrupt", "checksum mismatch: the snapshot was altered or damaged")
    if key is not None:
        _check_signature(document, key)
    try:
        snapshot = msgspec.convert(document, Snapshot, str_keys=True)
    except msgspec.ValidationError as exc:
        raise _invalid("bad_shape", str(exc).replace("`$.", "`$.snapshot.")) from None
    body = snapshot.body
    return body, _frozen_trials(body)


def _check_signature(document: dict[str, Any], key: bytes) -> None:
    given = document.get("signature")
    if not isinstance(given, str):
        raise _invalid(
            "unsigned",
            "this worker imports only snapshots signed with its "
            "--snapshot-key, and this one carries no signature",
        )
    if not hmac.compare_digest(given.encode(), signature(document, key).encode()):
        raise _invalid(
            "bad_signature",
            "the signature does not match: the snapshot was not "
            "signed with this worker's --snapshot-key, or was altered after signing",
        )


def _frozen_trials(body: SnapshotBody) -> list[FrozenTrial]:
    numbers = [t.number for t in body.trials]
    if numbers != list(range(len(numbers))):
        raise _invalid("bad_shape", "trial numbers must be 0, 1, 2, ... in order")
    return [_frozen_trial(t, len(body.directions), i) for i, t in enumerate(body.trials)]


def _frozen_trial(trial: SnapshotTrial, n_objectives: int, index: int) -> FrozenTrial:
    where = f"$.snapshot.body.trials[{index}]"
    try:
        distributions: dict[str, BaseDistribution] = {
            name: to_distribution(spec, f"{where}.distributions.{name}")
            for name, spec in trial.distributions.items()
        }
        if set(trial.params) != set(distributions):
            raise ValueError("params and distributions name different parameters")
        for name, value in trial.params.items():
            check_value(distributions[name], value, f"{where}.params.{name}")
        if any(PICKLED_ATTR.match(key) for key in trial.system_attrs):
            raise ValueError("system attrs hold a pickled object, which is never imported")
        if trial.values is not None and len(trial.values) != n_objectives:
            raise ValueError(f"{len(trial.values)} values for {n_objectives} objective(s)")
        frozen = optuna.trial.create_trial(
            state=STATES_BY_NAME[trial.state],
            values=trial.values,
            params=trial.params,
            distributions=distributions,
            user_attrs=trial.user_attrs,
            system_attrs=trial.system_attrs,
            intermediate_values=trial.intermediate_values,
        )
        frozen.datetime_start = _parse_time(trial.datetime_start)
        frozen.datetime_complete = _parse_time(trial.datetime_complete)
        frozen._validate()
    except BridgeError as exc:
        raise _invalid("bad_shape", exc.message) from None
    except ValueError as exc:
        raise _invalid("bad_shape", f"{exc} - at `{where}`") from None
    return frozen


def _parse_time(text: str | None) -> datetime.datetime | None:
    """A snapshot time as Optuna stores it (naive, local). Exports write UTC with ``Z``; older
    snapshots wrote naive local times, taken as they are."""
    if text is None:
        return None
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return moment


def _invalid(reason: str, message: str, **data: Any) -> BridgeError:
    return BridgeError(
        ErrorKind.SNAPSHOT_INVALID, f"invalid snapshot ({reason}): {message}", reason=reason, **data
    )
