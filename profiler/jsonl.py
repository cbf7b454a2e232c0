"""Append-only JSONL files of typed records that a ``kill -9`` cannot damage.

A record is appended as one line with a single ``write`` and an ``fsync``, so a writer killed at
any moment leaves every finished record intact and at most one torn last line (no newline), which
:meth:`RecordFile.read` skips and :meth:`RecordFile.open` cuts off. Any other line that is not a
record is damage no writer of ours leaves: it is refused with its line number and the field at
fault, never skipped, so no record after it is silently lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from profiler.documents import Document
from profiler.errors import ProfilerError

D = TypeVar("D", bound=Document)


class RecordsError(ProfilerError):
    """A line of a records file, other than a torn last one, is not a record; the file is untouched."""


def damaged(path: Path, number: int, why: str) -> RecordsError:
    """The one message for a damaged line: where, why, and what to do."""
    return RecordsError(
        f"{path} line {number} is damaged ({why}); the file was left unchanged. Repair or delete "
        "that line, then run the command again: a deleted result is measured again by "
        "`profiler sweep --resume`, a deleted score by `profiler eval ... --run`."
    )


def field_errors(exc: ValidationError) -> str:
    """A validation error in one line: each wrong field with what is wrong with it."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())


class RecordFile(Generic[D]):
    """One records file of a run directory, of one document type.

    Args:
        path: the file.
        parse: a raw JSON object (from one line) to its document; raises ``ValidationError``, or
            :class:`RecordsError` for a record this version cannot read. The default validates
            with ``kind``; a reader that accepts older versions passes its upgrade step here.
    """

    def __init__(self, path: Path, kind: type[D], parse: Callable[[dict[str, Any]], D] | None = None) -> None:
        self.path = path
        self.kind = kind
        self.parse = parse or kind.model_validate

    def _scan(self) -> tuple[list[D], int]:
        """Complete records, and the byte length they fill (all but a torn last line)."""
        records: list[D] = []
        valid = 0
        for number, line in enumerate(self.path.read_bytes().splitlines(keepends=True), start=1):
            if not line.endswith(b"\n"):
                break  # the last line, and the writer was killed mid-line
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise damaged(self.path, number, f"not JSON: {exc.msg} at column {exc.colno}") from exc
            except UnicodeDecodeError as exc:
                raise damaged(self.path, number, "not UTF-8 text") from exc
            if not isinstance(raw, dict):
                raise damaged(self.path, number, f"a JSON {type(raw).__name__}, not an object")
            try:
                records.append(self.parse(raw))
            except ValidationError as exc:
                why = f"not a valid {self.kind.__name__}: {field_errors(exc)}"
                raise damaged(self.path, number, why) from exc
            except RecordsError as exc:
                raise damaged(self.path, number, str(exc)) from exc
            valid += len(line)
        return records, valid

    def read(self) -> list[D]:
        """Every record (a torn last line is skipped); none if the file does not exist.

        Raises:
            RecordsError: another line is not a record.
        """
        return self._scan()[0] if self.path.exists() else []

    def open(self) -> list[D]:
        """Existing records, for appending: a torn last line from a killed writer is cut off.

        Raises:
            RecordsError: another line is not a record (nothing is cut off then).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return []
        records, valid = self._scan()
        if self.path.stat().st_size != valid:
            with self.path.open("r+b") as handle:
                handle.truncate(valid)
        return records

    def append(self, record: D) -> None:
        """Write one record as one line, atomically enough to survive ``kill -9``.

        Raises:
            RecordsError: the record would not read back (JSON writes a NaN or an infinity as
                null); nothing is written, so the file stays readable.
        """
        text = record.model_dump_json()
        try:
            self.parse(json.loads(text))
        except (ValidationError, RecordsError) as exc:
            why = field_errors(exc) if isinstance(exc, ValidationError) else str(exc)
            raise RecordsError(
                f"{self.path}: a record that would not read back was not written ({why})."
            ) from exc
        line = (text + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(descriptor, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
