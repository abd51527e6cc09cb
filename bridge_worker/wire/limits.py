"""Limits on what one frame (and one worker) may ask for, set by the operator.

The protocol has hard bounds that are part of the schema (``n`` at most 1000, names at most 512
characters, ...); the operator can only tighten them, from the command line. Every limit that a
frame hits is a ``limit_exceeded`` error (-32009) whose ``data.limit`` is the flag's name, so a
parent can tell "my request was malformed" (``invalid_params``) from "this worker is configured
smaller" (``limit_exceeded``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import msgspec

from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.framing import DEFAULT_MAX_FRAME_BYTES
from bridge_worker.wire.storage_bounds import check_keys


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Bytes in one frame; a longer one is discarded as it arrives (``frame_too_large``)."""
    max_reply_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Bytes in one reply; a larger result is answered with ``limit_exceeded`` saying how to get
    it in parts (default: the frame limit, so a parent never gets a frame it would refuse)."""
    max_batch: int = 1000
    """Requests in one JSON-RPC batch."""
    max_depth: int = 64
    """Nesting depth of arrays and objects in one frame."""
    max_ask: int = 1000
    """Trials asked by one ``ask`` (``n``)."""
    max_add_trials: int = 1000
    """Trials recorded by one ``add_trials``."""
    max_name_length: int = 512
    """Characters in a study or parameter name."""
    max_params: int = 1000
    """Parameters in one search space (a study's, an ask's, a snapshot trial's)."""
    max_choices: int = 10_000
    """Choices of one categorical parameter."""
    max_studies: int = 10_000
    """Studies in the worker's storage (checked when one is created or imported)."""
    max_ask_values: int = 2_000
    """Values one ``ask`` samples: ``n`` x parameters in its space (each costs a storage write)."""
    max_add_values: int = 2_000
    """Values one ``add_trials`` writes: for each trial 1 + its params, intermediate values and
    user attrs (each a storage write; on SQLite 3-15 ms apiece, so the default is seconds)."""
    max_ei_candidates: int = 24_000
    """TPE's ``n_ei_candidates`` x parameters: the candidates TPE scores for every trial asked."""
    max_bruteforce_candidates: int = 100_000
    """Values one parameter can take under BruteForce (which lists all of them at every ask)."""
    max_choice_length: int = 1024
    """Characters in one string choice of a categorical parameter (stored with every trial)."""
    max_user_attrs: int = 1000
    """User attrs set by one frame, and held by one study or trial."""
    max_user_attr_bytes: int = 4 * 1024 * 1024
    """Bytes of one user attr: its name plus its value as JSON."""
    max_plot_trials: int = 10_000
    """Trials in a study that ``plot`` draws (a figure of more is refused, not truncated)."""
    max_plot_panels: int = 100
    """Panels one figure draws (contour and rank: params x params; slice and parallel
    coordinate: one per param), checked before drawing: what a figure's cost grows with."""
    max_plot_seconds: int = 20
    """Seconds the process drawing one figure may take (then it is stopped)."""
    max_plot_memory_mib: int = 1024
    """MiB of address space the process drawing one figure may add to the worker's."""
    max_artifact_bytes: int = 1 << 30
    """Bytes of one artifact uploaded with ``artifact_put`` (default 1 GiB)."""

    def check(self, limit: str, what: str, value: int) -> None:
        """Raise ``limit_exceeded`` when ``value`` is over the limit named ``limit``."""
        maximum: int = getattr(self, limit)
        if value > maximum:
            raise BridgeError(
                ErrorKind.LIMIT_EXCEEDED,
                f"{what}: {value}, this worker allows at most {maximum} "
                f"(--{limit.replace('_', '-')})",
                limit=limit,
                value=value,
                max=maximum,
            )

    def check_user_attrs(
        self, attrs: Mapping[str, Any], field: str, existing: Mapping[str, Any] | None = None
    ) -> None:
        """Bound the user attrs a frame sets: how many (with those the target already holds)
        and how big each value is. Setting many attrs costs a storage write each, and on most
        storages each write copies what is already there."""
        check_keys(attrs, field)
        self.check("max_user_attrs", f"user attrs at {field}", len(attrs))
        if existing:
            total = len(existing.keys() | attrs.keys())
            self.check("max_user_attrs", f"user attrs held after setting {field}", total)
        for key, value in attrs.items():
            size = len(key.encode()) + len(msgspec.json.encode(value))
            self.check("max_user_attr_bytes", f"bytes of user attr {key[:64]!r} at {field}", size)


HARD_BOUNDS = {
    "max_ask": 1000,
    "max_add_trials": 1000,
    "max_name_length": 512,
    "max_batch": 1000,
}
"""Schema bounds a limit cannot raise (the protocol promises them to every parent)."""

NAMES = tuple(f.name for f in fields(Limits))
