"""The journal file, robust to a writer killed in the middle of a record.

Optuna's journal file is one JSON record per line. A writer killed during a large append leaves
a torn record: a line without its newline. Optuna's own backend then appends the next record to
that partial line, which makes it undecodable: that record is lost, and since a reader refuses
every line after an undecodable one, every worker answers ``storage_error`` for every study in
the file, for good.

Here, two rules repair it:

- **at write**, under the file lock (so no writer is mid-record), a file that does not end with a
  newline ends with a torn record: it is cut off before the new records are written. A torn
  record was never acknowledged (its writer died before the append returned), so nothing
  acknowledged is lost, and the next append is whole;
- **at read**, a line that does not decode (a file torn by an older version, or by plain Optuna)
  is read as the last complete record it ends with (a torn record followed by the record
  appended to it), or as a no-op when there is none; every reader counts it as one record, so
  log numbers agree between readers.

Costs nothing on the hot path: one ``pread`` of the file's last byte per append, and the repair
path only for a line that fails to decode. A read that finds the file no longer than the records
already read opens nothing (Optuna's journal storage reads before every operation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

import structlog
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.storages.journal._storage import JournalOperation

_log = structlog.get_logger("bridge_worker.storage.journal_file")

_NO_OP: dict[str, Any] = {"op_code": JournalOperation.DISCARD_TRIALS, "worker_id": ""}
"""A record every Optuna version replays as nothing (it stands in for an unreadable line)."""
_RECORD_START = '{"op_code":'
"""How every record Optuna writes begins (``JournalStorage._write_log``)."""


class RepairingJournalFileBackend(JournalFileBackend):
    """Optuna's journal file backend, with the two repair rules of this module."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with get_lock_file(self._lock):
            cut_torn_tail(self._file_path)
            what_to_write = (
                "\n".join([json.dumps(log, separators=(",", ":")) for log in logs]) + "\n"
            )
            with open(self._file_path, "ab") as f:
                f.write(what_to_write.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        offsets = self._log_number_offset
        remaining = os.stat(self._file_path).st_size  # what other writers add is not read
        if offsets.get(log_number_from, -1) == remaining:
            return  # nothing new: most reads (7 of 12 per trial) open no file (issue 24)
        with open(self._file_path, "rb") as f:
            log_number_start = 0
            if log_number_from in offsets:
                f.seek(offsets[log_number_from])
                log_number_start = log_number_from
                remaining -= offsets[log_number_from]
            for log_number, line in enumerate(f, start=log_number_start):
                remaining -= len(line)
                if remaining < 0 or not line.endswith(b"\n"):
                    break  # a record being written now, or a torn one the next append cuts
                if log_number + 1 not in offsets:
                    offsets[log_number + 1] = offsets[log_number] + len(line)
                if log_number < log_number_from:
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    yield _salvage(line, log_number)


def cut_torn_tail(path: str) -> None:
    """Cut a torn record (bytes after the last newline) off the end of the file."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        cut_torn_tail_of(fd, path)
    finally:
        os.close(fd)


def cut_torn_tail_of(fd: int, path: str) -> None:
    """:func:`cut_torn_tail` on the file open (read-write) as ``fd``."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    os.ftruncate(fd, end)
    os.fsync(fd)
    _log.warning("journal_torn_record_cut", path=path, bytes=size - end)


def _salvage(line: bytes, log_number: int) -> dict[str, Any]:
    """The last complete record a corrupt line ends with, or a no-op."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    decoder = json.JSONDecoder()
    start = text.rfind(_RECORD_START)
    while start > 0:  # a record starting at 0 would have decoded
        try:
            record, end = decoder.raw_decode(text, start)
        except ValueError:
            record, end = None, -1
        if end == len(text) and isinstance(record, dict):
            _log.warning("journal_torn_record_skipped", log_number=log_number, salvaged=True)
            return record
        start = text.rfind(_RECORD_START, 0, start)
    _log.warning("journal_torn_record_skipped", log_number=log_number, salvaged=False)
    return dict(_NO_OP)
