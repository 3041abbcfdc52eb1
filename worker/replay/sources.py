"""Ledger events from ``leadroute export`` CSV files, for ``leadroute replay --leads``.

An export (``docs/ledger.md``) has the ledger's typed columns and ``data`` as JSON text, so each row
turns back into the :class:`~worker.ledger.events.LedgerEvent` it was written from. A decisions
export gives the leads; an ``sla`` export beside it gives the acknowledgements that end their
loads (``--leads decisions.csv --leads sla.csv``). A row that cannot be read is reported with its
line and skipped; a file that is not an export at all is refused as a whole.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.ledger.events import LedgerEvent

REQUIRED = ("kind", "crm", "object", "lead_id", "at", "data")
_TIMES = ("at", "lead_created_at", "recorded_at")


class ExportFileError(ValueError):
    """The file as a whole is not a ``leadroute export`` CSV."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be read; ``line`` is 1-based in the file."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _time(value: str) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _event(row: dict[str, str]) -> LedgerEvent:
    values: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
    for name in _TIMES:
        if name in row:
            values[name] = _time(row[name])
    if values.get("at") is None:
        raise ValueError("no 'at' time")
    if row.get("epoch"):
        values["epoch"] = int(row["epoch"])
    data = json.loads(row["data"]) if row.get("data") else {}
    if not isinstance(data, dict):
        raise ValueError("'data' is not a JSON object")
    values["data"] = data
    for name in ("wait_seconds", "wait_business_seconds", "amount"):
        if values.get(name) is not None:
            values[name] = float(values[name])
    return LedgerEvent.from_row(values)


def read_export(path: Path, bad: list[BadRow]) -> Iterator[LedgerEvent]:
    """The events of one export CSV, in file order; unreadable rows go to ``bad``."""
    if not path.is_file():
        raise ExportFileError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise ExportFileError(f"{path}: not a `leadroute export` CSV (no column {', '.join(missing)}); export the "
                                  "ledger with `leadroute export decisions --out FILE` (and `sla` for acknowledgements)")
        for row in reader:
            try:
                yield _event(row)
            except (ValueError, TypeError) as exc:
                bad.append(BadRow(str(path), reader.line_num, f"{type(exc).__name__}: {exc}"))
