"""One pass over a set of events: row counts, flag sums and wait percentiles under several groupings at once.

A report needs the same rows grouped several ways (by path, by rep, by tier, overall), and
reading a million rows is what costs, so each set of rows is read once. SQL groups the rows by
every key column at once (a hash aggregate on PostgreSQL) and hands each of those finest
groups' values over as one list (``array_agg``; SQLite, which has neither arrays nor a
percentile function: ``group_concat`` text): a few thousand rows cross into Python, not a
million. numpy then sorts the values once per measure and stably by each grouping's codes,
and picks each percentile by rank, with the interpolation of PostgreSQL's ``percentile_cont``.
Counts and sums are SQL's, added up per grouping. Both databases give the same numbers (the
tests hold them to it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    """What :func:`grouped` found: per grouping (``""`` is overall, label ``()``), per label."""

    rows: dict[str, dict[Label, int]] = field(default_factory=dict)
    sums: dict[str, dict[Label, dict[str, int]]] = field(default_factory=dict)
    percentiles: dict[str, dict[Label, dict[str, Percentiles]]] = field(default_factory=dict)
    histogram: tuple[Bin, ...] = ()
    extremes: dict[str, dict[Label, tuple[Any, Any]]] = field(default_factory=dict)  # (min, max) per grouping

    def pct(self, key: str, label: Label, value: str) -> Percentiles:
        return self.percentiles.get(key, {}).get(label, {}).get(value, EMPTY)

    def total(self, key: str, label: Label, flag: str) -> int:
        return self.sums.get(key, {}).get(label, {}).get(flag, 0)


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
    """Counts, flag sums and (for ``percentiles_for`` groupings and overall) percentiles of ``values``.

    ``keys`` names each grouping by its columns (one or more); the overall figures are under ``""``.
    ``histogram_of`` names a value whose overall distribution is binned on :data:`EDGES`.
    ``extremes_of``: a column whose least and greatest value each grouping also reports.
    ``source``: what the rows are selected from, when it is more than the ``events`` table (a join).
    """
    return _grouped(connection, where, keys, values, flags or {}, set(percentiles_for), histogram_of, extremes_of, source)


def _floats(text: str) -> np.ndarray:
    """Every group's values, joined in group order: one parse for all of them ("nan" is NULL)."""
    return np.array(text.split(","), dtype=float)


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


def _grouped(
    connection: Connection,
    where: Sequence[ColumnElement[bool]],
    keys: Mapping[str, Sequence[ColumnElement[Any]]],
    values: Mapping[str, ColumnElement[float]],
    flags: Mapping[str, ColumnElement[bool]],
    percentiles_for: set[str],
    histogram_of: str | None,
    extremes_of: ColumnElement[Any] | None,
    source: FromClause | None,
) -> Grouped:
    distinct = _columns(keys)
    selected: list[Any] = [col.label(f"c{i}") for i, col in enumerate(distinct)]
    selected.append(func.count().label("rows"))
    # each finest group's values as one list (PostgreSQL: an array; SQLite: text, NULL as nan), in one row
    # order for every measure: a few thousand rows cross into Python instead of a million
    if connection.dialect.name == "postgresql":  # text parses faster than psycopg builds a list of a million floats
        selected += [func.string_agg(cast(func.coalesce(value, float("nan")), String), ",").label(f"v{j}")
                     for j, value in enumerate(values.values())]
    else:
        selected += [func.group_concat(func.ifnull(value, "nan")).label(f"v{j}") for j, value in enumerate(values.values())]
    selected += [func.sum(case((flag, 1), else_=0)).label(f"f{k}") for k, flag in enumerate(flags.values())]
    if extremes_of is not None:
        selected += [func.min(extremes_of), func.max(extremes_of)]
    query = _from(select(*selected), source).where(*where).group_by(*distinct)
    finest = connection.execute(query).all()
    m = len(finest)
    sizes = np.array([row[len(distinct)] for row in finest], dtype=np.int64)
    offset = len(distinct) + 1
    measures = {
        name: _floats(",".join(row[offset + j] for row in finest)) if m else np.zeros(0)
        for j, name in enumerate(values)
    }
    offset += len(values)
    flag_sums = {name: np.array([row[offset + k] or 0 for row in finest], dtype=np.int64) for k, name in enumerate(flags)}
    offset += len(flags)

    out = Grouped()
    groupings: dict[str, tuple[np.ndarray, list[Label]]] = {"": (np.zeros(m, dtype=np.int64), [()])}
    for name, cols in keys.items():
        idx = [_index(distinct, c) for c in cols]
        index: dict[Any, int] = {}
        if len(idx) == 1:
            (i,) = idx
            codes = np.fromiter((index.setdefault(row[i], len(index)) for row in finest), dtype=np.int64, count=m)
            groupings[name] = (codes, [(v,) for v in index])
        else:
            codes = np.fromiter((index.setdefault(tuple(row[i] for i in idx), len(index)) for row in finest),
                                dtype=np.int64, count=m)
            groupings[name] = (codes, list(index))
    for name, (code, names) in groupings.items():
        n = len(names)
        counts = np.bincount(code, weights=sizes, minlength=n)
        sums = {f: np.bincount(code, weights=a, minlength=n) for f, a in flag_sums.items()}
        out.rows[name] = {names[g]: int(counts[g]) for g in range(n)}
        out.sums[name] = {names[g]: {f: int(s[g]) for f, s in sums.items()} for g in range(n)}
        if extremes_of is not None:
            spans: dict[Label, tuple[Any, Any]] = {}
            for row, g in zip(finest, code.tolist(), strict=True):
                lo, hi = spans.get(names[g], (row[offset], row[offset + 1]))
                spans[names[g]] = (min(lo, row[offset]), max(hi, row[offset + 1]))
            out.extremes[name] = spans
    for value, measured in measures.items():
        valid = ~np.isnan(measured)
        order = np.argsort(measured[valid], kind="stable")
        ordered = measured[valid][order]
        if value == histogram_of:
            bounds = np.searchsorted(ordered, np.array([*EDGES, np.inf]), side="left")
            out.histogram = _bins(np.diff(bounds).tolist())
        for name, (code, names) in groupings.items():
            if name and name not in percentiles_for:
                continue
            group_of = np.repeat(code, sizes)[valid][order]
            by_group = np.argsort(group_of, kind="stable")  # stable: values stay ascending within a group
            _pick(ordered[by_group], np.bincount(group_of, minlength=len(names)), names,
                  out.percentiles.setdefault(name, {}), value)
    return out


def _pick(ordered: np.ndarray, sizes: np.ndarray, names: list[Label], into: dict[Label, dict[str, Percentiles]],
          value: str) -> None:
    """Percentiles of each group in ``ordered`` (grouped, ascending within each group of ``sizes``)."""
    ends = np.cumsum(sizes)
    starts = ends - sizes
    last = np.maximum(sizes - 1, 0)
    picked = []
    for fraction in FRACTIONS:
        position = last * fraction
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, last)
        if len(ordered):
            low_value = ordered[np.minimum(starts + low, len(ordered) - 1)]
            high_value = ordered[np.minimum(starts + high, len(ordered) - 1)]
            picked.append(low_value + (high_value - low_value) * (position - low))
        else:
            picked.append(np.zeros(len(sizes)))
    for g, label in enumerate(names):
        n = int(sizes[g])
        into.setdefault(label, {})[value] = Percentiles(n, *(float(p[g]) for p in picked)) if n else EMPTY
