"""Replies over ``--max-reply-bytes``: refused with an error that says how to get the data in parts.

A parent reads replies with a frame limit of its own (an Elixir port's line buffer, a client's
maximum); a reply it cannot read would be worse than an error. So a result whose encoding is
larger than the operator's ``--max-reply-bytes`` (default: ``--max-frame-bytes``) is answered with
``limit_exceeded`` (-32009), ``data.limit`` = ``"max_reply_bytes"``, ``data.value`` (the reply's
size), ``data.max``, and ``data.parts``: the request that fetches the same data in pieces that fit
(``trials`` with ``offset``/``limit``, ``ask`` with a smaller ``n``), when one exists.
"""

from __future__ import annotations

from typing import Any

from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.schema import AskResult, TrialsResult

SAFETY = 0.8
"""Suggested pages are sized to this share of the limit: trials differ in size."""


def reply_too_large(method: str, result: Any, size: int, maximum: int) -> BridgeError:
    parts = _parts(method, result, size, maximum)
    if parts is not None:
        how = f"fetch it in parts: {parts['how']}"
    else:
        how = (
            "page the study's trials with `trials` (`offset`, `limit`) or ask the operator "
            "for a larger --max-reply-bytes"
        )
    data: dict[str, Any] = {
        "limit": "max_reply_bytes",
        "value": size,
        "max": maximum,
        "method": method,
    }
    if parts is not None:
        data["parts"] = parts["request"]
    return BridgeError(
        ErrorKind.LIMIT_EXCEEDED,
        f"the {method} reply is {size} bytes, this worker sends at most {maximum} "
        f"(--max-reply-bytes); {how}",
        **data,
    )


def _parts(method: str, result: Any, size: int, maximum: int) -> dict[str, Any] | None:
    if method == "trials" and isinstance(result, TrialsResult) and result.trials:
        per_page = _fitting(len(result.trials), size, maximum)
        return {
            "how": f"`trials` with `offset` 0, {per_page}, {2 * per_page}, ... and `limit` "
            f"{per_page}",
            "request": {"method": "trials", "offset": 0, "limit": per_page},
        }
    if method == "ask" and isinstance(result, AskResult) and len(result.trials) > 1:
        per_call = _fitting(len(result.trials), size, maximum)
        return {
            "how": f"`ask` with `n` {per_call}, repeated (the trials asked are kept; "
            '`trials` with `states` ["running"] lists them)',
            "request": {"method": "ask", "n": per_call},
        }
    return None


def _fitting(n_items: int, size: int, maximum: int) -> int:
    return max(1, int(n_items * maximum * SAFETY / size))
