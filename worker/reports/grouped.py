"""One pass over a set of events: row counts, flag sums and wait percentiles under several groupings at once.

A report needs the same rows grouped several ways (by path, by rep, by tier, overall), and
reading a million rows is what costs, so each set of rows is read once, in two steps:

* :func:`fetch`: SQL groups the rows by every key column at once (a hash aggregate on
  PostgreSQL) and hands each of those finest groups' values over as one list (``string_agg``;
  SQLite, which has neither arrays nor a percentile function: ``group_concat`` text): a few
  thousand rows cross into Python, not a million. The result, :class:`Finest`, keeps every
  value, so finest groups read from different days add up exactly (:meth:`Finest.concat`):
  that is what the report's day cache stores (:mod:`worker.reports.pieces`).
* :func:`summarise`: numpy orders the values by each grouping's codes (a stable radix sort of
  16-bit codes, linear) and finds the two ranks around each percentile by partitioning each
  group (linear too), with the interpolation of PostgreSQL's ``percentile_cont``. Counts and
  sums are added up per grouping.

Both databases give the same numbers, and so do a period read at once and read day by day
(the tests hold them to it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, FromClause, Select, String, case, cast, func, select

from worker.reports.model import Bin, Percentiles

FRACTIONS = (0.5, 0.9, 0.95)
# histogram edges, seconds: from a second to two days, roughly logarithmic
EDGES = (0.0, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
         28800.0, 86400.0, 172800.0)

Label = tuple[Any, ...]
EMPTY = Percentiles(0, None, None, None)


@dataclass
class Grouped:
    """What :func:`summarise` found: per grouping (``""`` is overall, label ``()``), per label."""

    rows: dict[str, dict[Label, int]] = field(default_factory=dict)
    sums: dict[str, dict[Label, dict[str, int]]] = field(default_factory=dict)
    percentiles: dict[str, dict[Label, dict[str, Percentiles]]] = field(default_factory=dict)
    histogram: tuple[Bin, ...] = ()
    extremes: dict[str, dict[Label, tuple[Any, Any]]] = field(default_factory=dict)  # (min, max) per grouping

    def pct(self, key: str, label: Label, value: str) -> Percentiles:
        return self.percentiles.get(key, {}).get(label, {}).get(value, EMPTY)

    def total(self, key: str, label: Label, flag: str) -> int:
        return self.sums.get(key, {}).get(label, {}).get(flag, 0)


class OldLayout(ValueError):
    """A piece kept by an earlier version (keys as JSON tuples): not an error, it is read again and replaced."""


NO_TIME = np.iinfo(np.int64).min  # an extreme of a NULL time: the least of all, as "" was among ISO texts


@dataclass
class Finest:
    """The finest groups of a set of rows: each group's key, row count, flag sums, least and greatest
    ``extremes_of`` and, per measure, every value (NaN for NULL), all groups' values concatenated in
    group order.

    Keys are kept column by column, as codes: ``levels[c]`` lists key column ``c``'s distinct values
    and ``codes[g, c]`` is group ``g``'s index into it. A month of day pieces holds a few hundred
    thousand groups, so keys as codes decode from the day cache and group in numpy, not one Python
    tuple at a time. ``extremes`` is ``(groups, 2)`` microseconds since 1970 (UTC), :data:`NO_TIME`
    for NULL, or None when not asked for.
    """

    levels: list[list[Any]]
    codes: np.ndarray
    sizes: np.ndarray
    values: dict[str, np.ndarray]
    flags: dict[str, np.ndarray]
    extremes: np.ndarray | None = None

    @classmethod
    def empty(cls, values: Sequence[str], flags: Sequence[str] = ()) -> Finest:
        return cls([], np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64), {v: np.zeros(0) for v in values},
                   {f: np.zeros(0, dtype=np.int64) for f in flags})

    @classmethod
    def from_keys(cls, keys: Sequence[Label], width: int, sizes: np.ndarray, values: dict[str, np.ndarray],
                  flags: dict[str, np.ndarray], extremes: np.ndarray | None = None) -> Finest:
        """Groups given as key tuples (``width`` columns each), coded column by column."""
        levels: list[list[Any]] = []
        codes = np.zeros((len(keys), width), dtype=np.int64)
        for c, column in enumerate(zip(*keys, strict=True) if keys else [()] * width):
            index = {v: i for i, v in enumerate(dict.fromkeys(column))}
            levels.append(list(index))
            codes[:, c] = np.fromiter(map(index.__getitem__, column), dtype=np.int64, count=len(keys))
        return cls(levels, codes, sizes, values, flags, extremes)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def keys(self) -> list[Label]:
        """Each group's key as a tuple (for a few groups: tests, small pieces)."""
        return [tuple(self.levels[c][i] for c, i in enumerate(row)) for row in self.codes.tolist()]

    @classmethod
    def concat(cls, parts: Sequence[Finest]) -> Finest:
        """The groups of all ``parts`` side by side (a key may repeat: :func:`summarise` adds them up)."""
        full = [p for p in parts if len(p)] or [parts[0]]
        if len(full) == 1:
            return full[0]
        width = full[0].codes.shape[1]
        levels: list[list[Any]] = []
        codes = np.empty((sum(len(p) for p in full), width), dtype=np.int64)
        for c in range(width):
            index: dict[Any, int] = {}
            row = 0
            for part in full:
                remap = np.array([index.setdefault(v, len(index)) for v in part.levels[c]], dtype=np.int64)
                codes[row:row + len(part), c] = remap[part.codes[:, c]]
                row += len(part)
            levels.append(list(index))
        first = full[0]
        extremes = np.concatenate([p.extremes for p in full]) if first.extremes is not None else None
        return cls(levels, codes, np.concatenate([p.sizes for p in full]),
                   {v: np.concatenate([p.values[v] for p in full]) for v in first.values},
                   {f: np.concatenate([p.flags[f] for p in full]) for f in first.flags}, extremes)

    def split(self, position: int) -> dict[Any, Finest]:
        """The groups by the value of one key column (the day), each part with its own values."""
        if not len(self):
            return {}
        of_row = np.repeat(self.codes[:, position], self.sizes)
        out = {}
        for code in np.unique(self.codes[:, position]).tolist():
            picked = np.flatnonzero(self.codes[:, position] == code)
            take = np.flatnonzero(of_row == code)
            out[self.levels[position][code]] = Finest(
                self.levels, self.codes[picked], self.sizes[picked], {v: a[take] for v, a in self.values.items()},
                {f: a[picked] for f, a in self.flags.items()}, None if self.extremes is None else self.extremes[picked])
        return out

    def encode(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready header (the key columns' values, the measures' names) and numpy arrays, for the day cache."""
        header = {"levels": self.levels, "width": int(self.codes.shape[1]), "values": list(self.values),
                  "flags": list(self.flags), "extremes": self.extremes is not None}
        arrays = {"sizes": self.sizes.astype(np.int64), "codes": self.codes.astype(np.int64).ravel()}
        if self.extremes is not None:
            arrays["extremes"] = self.extremes.astype(np.int64).ravel()
        arrays |= {f"v:{k}": v for k, v in self.values.items()}
        arrays |= {f"f:{k}": v.astype(np.int64) for k, v in self.flags.items()}
        return header, arrays

    @classmethod
    def decode(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Finest:
        if "levels" not in header:
            raise OldLayout("keys as tuples: read again")
        sizes = arrays["sizes"]
        width = int(header["width"])
        extremes = arrays["extremes"].reshape(len(sizes), 2) if header["extremes"] else None
        return cls([list(level) for level in header["levels"]], arrays["codes"].reshape(len(sizes), width), sizes,
                   {v: arrays[f"v:{v}"] for v in header["values"]}, {f: arrays[f"f:{f}"] for f in header["flags"]},
                   extremes)


def fetch(
    connection: Connection,
    where: Sequence[ColumnElement[bool]],
    *,
    columns: Sequence[ColumnElement[Any]],
    values: Mapping[str, ColumnElement[float]],
    flags: Mapping[str, ColumnElement[bool]] | None = None,
    extremes_of: ColumnElement[Any] | None = None,
    source: FromClause | None = None,
) -> Finest:
    """The finest groups (by ``columns``) of the rows ``where`` selects, with every value of ``values``.

    ``extremes_of``: a time column whose least and greatest value each group also carries.
    ``source``: what the rows are selected from, when it is more than the ``events`` table (a join).
    """
    flags = flags or {}
    selected: list[Any] = [col.label(f"c{i}") for i, col in enumerate(columns)]
    selected.append(func.count().label("rows"))
    # each finest group's values as one list (text, NULL as nan), in one row order for every measure
    if connection.dialect.name == "postgresql":  # text parses faster than psycopg builds a list of a million floats
        selected += [func.string_agg(cast(func.coalesce(value, float("nan")), String), ",").label(f"v{j}")
                     for j, value in enumerate(values.values())]
    else:
        selected += [func.group_concat(func.ifnull(value, "nan")).label(f"v{j}") for j, value in enumerate(values.values())]
    selected += [func.sum(case((flag, 1), else_=0)).label(f"f{k}") for k, flag in enumerate(flags.values())]
    if extremes_of is not None:
        selected += [func.min(extremes_of), func.max(extremes_of)]
    query = _from(select(*selected), source).where(*where).group_by(*columns)
    finest = connection.execute(query).all()
    if not finest:
        return Finest.empty(list(values), list(flags))
    width = len(columns)
    offset = width + 1
    measures = {name: _floats(",".join(row[offset + j] for row in finest)) for j, name in enumerate(values)}
    offset += len(values)
    sums = {name: np.array([row[offset + k] or 0 for row in finest], dtype=np.int64) for k, name in enumerate(flags)}
    offset += len(flags)
    extremes = (np.array([(_micros(row[offset]), _micros(row[offset + 1])) for row in finest], dtype=np.int64)
                if extremes_of is not None else None)
    return Finest.from_keys([tuple(row[:width]) for row in finest], width,
                            np.array([row[width] for row in finest], dtype=np.int64), measures, sums, extremes)


def summarise(
    finest: Finest,
    keys: Mapping[str, Sequence[int]],
    *,
    percentiles_for: Sequence[str] = (),
    histogram_of: str | None = None,
) -> Grouped:
    """Counts, flag sums, extremes and (for ``percentiles_for`` groupings and overall) percentiles.

    ``keys`` names each grouping by the positions of its columns in the finest keys; the overall
    figures are under ``""``. ``histogram_of`` names a value whose overall distribution is binned
    on :data:`EDGES`.
    """
    m = len(finest)
    sizes = finest.sizes
    out = Grouped()
    groupings: dict[str, tuple[np.ndarray, list[Label]]] = {"": (np.zeros(m, dtype=np.int64), [()])}
    for name, idx in keys.items():
        groupings[name] = _grouping(finest, idx)
    for name, (code, names) in groupings.items():
        n = len(names)
        counts = np.bincount(code, weights=sizes, minlength=n)
        sums = {f: np.bincount(code, weights=a, minlength=n) for f, a in finest.flags.items()}
        out.rows[name] = {names[g]: int(counts[g]) for g in range(n)}
        out.sums[name] = {names[g]: {f: int(s[g]) for f, s in sums.items()} for g in range(n)}
        if finest.extremes is not None and m:
            low = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
            high = np.full(n, NO_TIME, dtype=np.int64)
            np.minimum.at(low, code, finest.extremes[:, 0])
            np.maximum.at(high, code, finest.extremes[:, 1])
            out.extremes[name] = {names[g]: (_time(int(low[g])), _time(int(high[g]))) for g in range(n)}
    # per grouping: the values' order by group and the groups' sizes, shared by the values missing in the same
    # rows (the wall and business waits, mostly): one sort per grouping instead of one per grouping and value
    orders: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}
    for value, measured in finest.values.items():
        valid = ~np.isnan(measured)
        present = measured[valid]
        if value == histogram_of:  # bin i holds EDGES[i] <= w < EDGES[i + 1]; the last, w >= its edge
            bins = np.searchsorted(np.array(EDGES), present, side="right") - 1
            out.histogram = _bins(np.bincount(bins[bins >= 0], minlength=len(EDGES)).tolist())
        for name, (code, names) in groupings.items():
            if name and name not in percentiles_for:
                continue
            known = orders.get(name)
            if known is not None and np.array_equal(known[0], valid):
                order, counts = known[1], known[2]
            else:
                group_of = np.repeat(code, sizes)[valid]
                # numpy sorts 16-bit integers stably by radix: linear, not n log n
                order = (np.argsort(group_of.astype(np.int16) if len(names) < 1 << 15 else group_of, kind="stable")
                         if len(names) > 1 else None)
                counts = np.bincount(group_of, minlength=len(names))
                orders[name] = (valid, order, counts)
            _pick(present if order is None else present[order], counts, names, out.percentiles.setdefault(name, {}),
                  value)
    return out


def grouped(
    connection: Connection,
    where: Sequence[ColumnElement[bool]],
    *,
    keys: Mapping[str, Sequence[ColumnElement[Any]]],
    values: Mapping[str, ColumnElement[float]],
    flags: Mapping[str, ColumnElement[bool]] | None = None,
    percentiles_for: Sequence[str] = (),
    histogram_of: str | None = None,
    extremes_of: ColumnElement[Any] | None = None,
    source: FromClause | None = None,
) -> Grouped:
    """:func:`fetch` then :func:`summarise`, with each grouping named by its columns."""
    distinct = _columns(keys)
    finest = fetch(connection, where, columns=distinct, values=values, flags=flags, extremes_of=extremes_of, source=source)
    positions = {name: [_index(distinct, c) for c in cols] for name, cols in keys.items()}
    return summarise(finest, positions, percentiles_for=percentiles_for, histogram_of=histogram_of)


def _grouping(finest: Finest, idx: Sequence[int]) -> tuple[np.ndarray, list[Label]]:
    """Each group's code under the grouping by key columns ``idx`` and the grouping's labels, in order of
    first appearance (as the rows were read), only those present."""
    m = len(finest)
    if not m:
        return np.zeros(0, dtype=np.int64), []
    columns = finest.codes[:, list(idx)]
    if len(idx) == 1:
        present, first, inverse = np.unique(columns[:, 0], return_index=True, return_inverse=True)
        rows = present[:, None]
    else:
        rows, first, inverse = np.unique(columns, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels = [tuple(finest.levels[c][v] for c, v in zip(idx, row, strict=True)) for row in rows[order].tolist()]
    return rank[np.asarray(inverse).reshape(-1)], labels


def _floats(text: str) -> np.ndarray:
    """Every group's values, joined in group order: one parse for all of them ("nan" is NULL)."""
    return np.array(text.split(","), dtype=float)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(value: datetime | str | None) -> int:
    """A time as read back (SQLite: text in UTC) as whole microseconds since 1970, exactly; NULL is :data:`NO_TIME`."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is None:
        return int(NO_TIME)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return (value - _EPOCH) // _MICROSECOND


def _time(micros: int) -> datetime | None:
    return None if micros == NO_TIME else _EPOCH + micros * _MICROSECOND


def _from(query: Select[Any], source: FromClause | None) -> Select[Any]:
    return query if source is None else query.select_from(source)


def _columns(keys: Mapping[str, Sequence[ColumnElement[Any]]]) -> list[ColumnElement[Any]]:
    distinct: list[ColumnElement[Any]] = []
    for cols in keys.values():
        for col in cols:
            if not any(col is seen for seen in distinct):
                distinct.append(col)
    return distinct


def _index(distinct: list[ColumnElement[Any]], col: ColumnElement[Any]) -> int:
    return next(i for i, seen in enumerate(distinct) if seen is col)


def _bins(counts: Sequence[int]) -> tuple[Bin, ...]:
    highs: list[float | None] = [*EDGES[1:], None]
    return tuple(Bin(low, high, int(n)) for low, high, n in zip(EDGES, highs, counts, strict=True))


def _pick(grouped: np.ndarray, sizes: np.ndarray, names: list[Label], into: dict[Label, dict[str, Percentiles]],
          value: str) -> None:
    """Percentiles of each group in ``grouped`` (the groups' values one after another, in any order within a
    group): the two ranks around each fraction found by partitioning (linear), interpolated between."""
    ends = np.cumsum(sizes)
    for g, label in enumerate(names):
        n = int(sizes[g])
        if not n:
            into.setdefault(label, {})[value] = EMPTY
            continue
        positions = [(n - 1) * fraction for fraction in FRACTIONS]
        ranks = sorted({r for p in positions for r in (int(np.floor(p)), min(int(np.floor(p)) + 1, n - 1))})
        part = np.partition(grouped[ends[g] - n:ends[g]], ranks)
        picked = []
        for position in positions:
            low = int(np.floor(position))
            low_value, high_value = part[low], part[min(low + 1, n - 1)]
            picked.append(float(low_value + (high_value - low_value) * (position - low)))
        into.setdefault(label, {})[value] = Percentiles(n, *picked)
