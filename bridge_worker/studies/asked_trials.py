"""Which study each trial this worker handed out belongs to, so a result is never recorded
against parameters it was not computed for.

On the wire a trial is addressed by its study's name and its number. Names outlive studies:
another worker (or this one) may delete the study and create another under the same name, whose
trial with that number is a different trial. Every trial this worker answers an ``ask`` with is
remembered with the identity (:mod:`bridge_worker.storage.identity`) its study had then; a ``tell``,
``renew``, ``report`` or ``set_attrs`` of it is checked against the identity the name has now,
and refused with ``study_not_found`` (``data.replaced: true``) when they differ. A trial asked
through another worker is checked by name only (this worker never saw its study).

Cost: one dict insert per asked trial and one lookup per tell; at most :data:`LIMIT` trials are
remembered (the oldest are forgotten first, so memory is bounded when evaluators never tell).
"""

from __future__ import annotations

from bridge_worker.studies.study import StudyEntry
from bridge_worker.wire.errors import BridgeError, ErrorKind

LIMIT = 100_000
"""Trials remembered at most (about 200 bytes each)."""


def replaced(name: str, number: int) -> BridgeError:
    return BridgeError(
        ErrorKind.STUDY_NOT_FOUND,
        f"trial {number} was asked from a study {name!r} that has since been deleted or "
        "replaced; nothing was recorded",
        study=name,
        number=number,
        replaced=True,
    )


class AskedTrials:
    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._studies: dict[tuple[str, int], tuple[int, str | None]] = {}
        """(study name, trial number) -> (storage study id, identity token) when it was asked."""

    def asked(self, entry: StudyEntry, numbers: list[int]) -> None:
        identity = (entry.study_id, entry.token)
        for number in numbers:
            key = (entry.name, number)
            self._studies.pop(key, None)  # re-inserted last: the newest is forgotten last
            self._studies[key] = identity
        while len(self._studies) > self._limit:
            del self._studies[next(iter(self._studies))]

    def check(self, entry: StudyEntry, number: int) -> None:
        """``study_not_found`` (``replaced``) if trial ``number`` was asked here from another
        study than the one ``entry`` is now."""
        seen = self._studies.get((entry.name, number))
        if seen is None or seen == (entry.study_id, entry.token):
            return
        study_id, token = seen
        if token is None and study_id == entry.study_id:
            return  # a study served before its token was written, stamped since: the same one
        raise replaced(entry.name, number)

    def knows(self, name: str, number: int) -> bool:
        return (name, number) in self._studies

    def told(self, name: str, number: int) -> None:
        self._studies.pop((name, number), None)
