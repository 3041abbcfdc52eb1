"""What a report pass reads from a span of the ledger, as a piece that adds up, and the day cache of pieces.

A pass (:mod:`worker.reports.passes`) reads its rows for a span and returns one
:class:`Piece` per UTC day the rows fall on. A piece keeps everything the figures need from
those rows, never a figure itself: every wait (:class:`~worker.reports.grouped.Finest`), counts
(``tally``) and timestamps (``stamps``), so pieces of different days concatenate into exactly
the piece of the whole span, and a percentile, a skip's duration or a compliance share comes
out the same whether the period was read at once or day by day.

**The day cache.** A report over whole UTC days keeps each day's piece in ``report_pieces``,
stamped with the day's counter in ``ledger_days``, which the ledger's writer and prune bump in
the same transaction as the events (:mod:`worker.ledger.days`). The next report reads every
piece whose stamp still matches and reads ``events`` only for days whose counter moved, days
never read, and the partial days at the period's edges. The counters are read before the
events, so a write that lands in between leaves a piece stamped too old (read again next
time), never one that looks current and is not. A database the report may not write to still
reports, just without keeping pieces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import structlog
from sqlalchemy import Connection, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from worker.ledger.days import day_of, day_start, generations
from worker.ledger.schema import report_pieces
from worker.reports.grouped import Finest, OldLayout
from worker.reports.model import Period

log = structlog.get_logger("leadroute.reports")

Key = tuple[Any, ...]


@dataclass
class Piece:
    """One pass's rows of one span: the finest groups with their values, counts per key, timestamps per key."""

    finest: Finest | None = None
    tally: dict[str, dict[Key, list[int]]] = field(default_factory=dict)
    stamps: dict[str, dict[Key, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: Sequence[Piece], empty: Callable[[], Piece]) -> Piece:
        """All ``parts`` as one piece: finest groups side by side, counts added, timestamps joined."""
        if not parts:
            return empty()
        finest = [p.finest for p in parts if p.finest is not None]
        out = cls(Finest.concat(finest) if finest else None)
        for part in parts:
            for name, counts in part.tally.items():
                into = out.tally.setdefault(name, {})
                for key, numbers in counts.items():
                    have = into.get(key)
                    into[key] = list(numbers) if have is None else [a + b for a, b in zip(have, numbers, strict=True)]
            for name, stamps in part.stamps.items():
                grown = out.stamps.setdefault(name, {})
                for key, array in stamps.items():
                    grown[key] = array if key not in grown else np.concatenate([grown[key], array])
        return out

    def encode(self) -> tuple[str, bytes]:
        """The piece as JSON text (keys, counts, array layout) and one blob of float64/int64 arrays."""
        header: dict[str, Any] = {"tally": {name: [[list(k), v] for k, v in counts.items()]
                                            for name, counts in self.tally.items()}}
        arrays: list[tuple[str, np.ndarray]] = []
        if self.finest is not None:
            finest_header, finest_arrays = self.finest.encode()
            header["finest"] = finest_header
            arrays += [(f"finest/{name}", array) for name, array in finest_arrays.items()]
        header["stamps"] = {}
        for name, stamps in self.stamps.items():
            header["stamps"][name] = [list(k) for k in stamps]
            arrays += [(f"stamps/{name}/{i}", array) for i, array in enumerate(stamps.values())]
        header["arrays"] = [[name, str(array.dtype), len(array)] for name, array in arrays]
        blob = b"".join(np.ascontiguousarray(array).tobytes() for _, array in arrays)
        return json.dumps(header, separators=(",", ":")), blob

    @classmethod
    def decode(cls, text: str, blob: bytes) -> Piece:
        header = json.loads(text)
        arrays: dict[str, np.ndarray] = {}
        offset = 0
        for name, dtype, length in header["arrays"]:
            kind = np.dtype(dtype)
            if kind not in (np.dtype(np.float64), np.dtype(np.int64)):
                raise ValueError(f"report piece: unexpected array type {dtype}")
            arrays[name] = np.frombuffer(blob, dtype=kind, count=length, offset=offset)
            offset += kind.itemsize * length
        finest = None
        if "finest" in header:
            finest = Finest.decode(header["finest"], {n.removeprefix("finest/"): a for n, a in arrays.items()
                                                      if n.startswith("finest/")})
        tally = {name: {tuple(k): list(v) for k, v in rows} for name, rows in header["tally"].items()}
        stamps = {name: {tuple(k): arrays[f"stamps/{name}/{i}"] for i, k in enumerate(keys)}
                  for name, keys in header["stamps"].items()}
        return cls(finest, tally, stamps)


Reader = Callable[[Connection, Period], dict[int, Piece]]


@dataclass(frozen=True)
class Pass:
    """A pass: its name and parameters (what its pieces depend on besides the rows), how it reads a span."""

    name: str
    params: Mapping[str, Any]
    read: Reader
    empty: Callable[[], Piece]

    @property
    def key(self) -> str:
        return json.dumps(self.params, sort_keys=True, separators=(",", ":"))


def whole_days(period: Period) -> tuple[list[Period], range]:
    """The period's partial days at either edge (read from ``events`` each time) and its whole UTC days."""
    first = day_of(period.since)
    if day_start(first) < period.since:
        first += 1
    last = day_of(period.until)
    if last <= first:
        return [period], range(0)
    edges = []
    if period.since < day_start(first):
        edges.append(Period(period.since, day_start(first)))
    if day_start(last) < period.until:
        edges.append(Period(day_start(last), period.until))
    return edges, range(first, last)


def gather(connection: Connection, job: Pass, period: Period, *, cache: bool = True) -> Piece:
    """The pass's piece of the whole period: whole days from the cache where current, the rest from ``events``."""
    if not cache:
        return Piece.concat(list(job.read(connection, period).values()), job.empty)
    edges, days = whole_days(period)
    parts: list[Piece] = []
    for edge in edges:
        parts += job.read(connection, edge).values()
    if not days:
        return Piece.concat(parts, job.empty)
    current = generations(connection, days.start, days.stop)  # before the events: see the module's note
    kept = _cached(connection, job, days)
    stale = [d for d in days if d not in kept or kept[d][0] != current.get(d, 0)]
    fresh: dict[int, Piece] = {}
    for run in _runs(stale):
        found = job.read(connection, Period(day_start(run[0]), day_start(run[-1] + 1)))
        fresh |= {d: found.get(d) or job.empty() for d in run}
    parts += [kept[d][1] for d in days if d not in fresh] + list(fresh.values())
    if fresh:
        _keep(connection, job, {d: (current.get(d, 0), piece) for d, piece in fresh.items()})
    return Piece.concat(parts, job.empty)


def _cached(connection: Connection, job: Pass, days: range) -> dict[int, tuple[int, Piece]]:
    query = (select(report_pieces.c.day, report_pieces.c.generation, report_pieces.c.header, report_pieces.c.arrays)
             .where(report_pieces.c["pass"] == job.name, report_pieces.c.params == job.key,
                    report_pieces.c.day >= days.start, report_pieces.c.day < days.stop))
    out = {}
    for day, generation, header, blob in connection.execute(query):
        try:
            out[int(day)] = (int(generation), Piece.decode(header, bytes(blob)))
        except OldLayout:  # kept before the keys were coded: read again and replaced, as expected once after an upgrade
            continue
        except (ValueError, KeyError, TypeError) as exc:  # a piece this code cannot read is read again
            log.warning("report_piece_unreadable", day=int(day), pass_=job.name, error=str(exc))
    return out


def _keep(connection: Connection, job: Pass, pieces: Mapping[int, tuple[int, Piece]]) -> None:
    """Store fresh pieces in their own transaction; a read-only database keeps none and still reports."""
    rows = []
    for day, (generation, piece) in sorted(pieces.items()):
        header, blob = piece.encode()
        rows.append({"day": day, "pass": job.name, "params": job.key, "generation": generation, "header": header,
                     "arrays": blob})
    try:
        connection.commit()  # end the reading transaction (and its settings) before writing
        with connection.begin():
            connection.execute(_upsert(connection.dialect.name, report_pieces), rows)
    except SQLAlchemyError as exc:
        log.warning("report_pieces_not_kept", pass_=job.name, days=len(rows), error=str(exc)[:300])


def _upsert(dialect_name: str, table: Table) -> Any:
    """Insert a piece, or replace the one kept for the same day, pass and parameters."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.day, table.c["pass"], table.c.params],
        set_={"generation": statement.excluded.generation, "header": statement.excluded.header,
              "arrays": statement.excluded.arrays})


def forget(connection: Connection, before: datetime | None = None) -> int:
    """Delete cached pieces (of days before ``before``, or all): they are read again when next needed."""
    query = delete(report_pieces)
    if before is not None:
        query = query.where(report_pieces.c.day < day_of(before))
    return int(connection.execute(query).rowcount or 0)


def _runs(days: Iterable[int]) -> list[list[int]]:
    """Consecutive days as runs, each read with one query."""
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


__all__ = ["Pass", "Piece", "forget", "gather", "whole_days"]
