"""Offline simulation: route an export of leads against a config and summarise where they went."""

from __future__ import annotations

import csv
import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.config import RoutingConfig
from worker.domain.normalize import NormalizedLead, normalize_lead
from worker.domain.stats import gini
from worker.routing.engine import FALLBACK, Decision, Router
from worker.routing.state import InMemoryState


@dataclass(frozen=True, slots=True)
class RowError:
    """A row of the input that could not be read; ``line`` is 1-based in the file."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}: {self.message}"


class LeadFileError(ValueError):
    """The lead file as a whole cannot be read (missing, wrong format, no header)."""


def _read_csv(path: Path, opened: list[Any]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        opened.append(handle)
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise LeadFileError(f"{path}: empty file, expected a header row of field names") from None
        except csv.Error as exc:
            raise LeadFileError(f"{path}: line 1: {exc}") from None
        names = [h.strip() for h in header]
        if not any(names):
            raise LeadFileError(f"{path}: line 1: the header row is blank")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, RowError(reader.line_num, f"cannot parse CSV: {exc}")
                continue
            line = reader.line_num
            if not row or not "".join(row).strip():  # a blank row, or only whitespace
                continue
            if len(row) != len(names):
                yield line, RowError(line, f"expected {len(names)} columns as in the header, found {len(row)}")
                continue
            yield line, dict(zip(names, row, strict=True))


def _read_jsonl(path: Path, opened: list[Any]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with path.open(encoding="utf-8") as handle:
        opened.append(handle)
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, RowError(number, f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(obj, dict):
                yield number, RowError(number, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield number, obj


class LeadRows:
    """(line, lead or RowError) from a CSV (header row) or JSON Lines file, in file order, one row at a time.

    ``size`` is the file's size in bytes and ``position`` how far into it reading has got (to the
    read-ahead buffer's 8 KiB), for progress at no cost per row; nothing but the current row and
    that buffer is held in memory.
    """

    def __init__(self, path: Path, rows: Any, opened: list[Any]) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._rows = rows
        self._opened = opened

    @property
    def position(self) -> int:
        if not self._opened or self._opened[0].closed:
            return self.size if self._opened else 0
        return self._opened[0].buffer.tell()

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
        return self._rows


def read_leads(path: Path) -> LeadRows:
    """The rows of a CSV (header row) or JSON Lines file, in file order, streamed (see :class:`LeadRows`)."""
    if not path.is_file():
        raise LeadFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    opened: list[Any] = []
    if suffix in (".jsonl", ".ndjson", ".json"):
        return LeadRows(path, _read_jsonl(path, opened), opened)
    if suffix in (".csv", ".txt"):
        return LeadRows(path, _read_csv(path, opened), opened)
    raise LeadFileError(f"{path}: unknown format '{suffix}'; use .csv (with a header row) or .jsonl")


def read_loads(path: Path) -> dict[str, int]:
    """Starting loads for ``simulate --loads``: a JSON object of rep id -> open leads."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LeadFileError(f"{path}: cannot read loads: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and v >= 0 for v in data.values()):
        raise LeadFileError(f"{path}: expected a JSON object of rep id -> non-negative whole number")
    return {str(k): int(v) for k, v in data.items()}


def route_rows(
    config: RoutingConfig,
    rows: Iterable[tuple[int, dict[str, Any] | RowError]],
    at: datetime | None = None,
    loads: Mapping[str, int] | None = None,
) -> Iterator[tuple[int, Decision | RowError]]:
    """Route every readable row in order against one fresh in-memory state, yielding as it goes.

    Each lead is routed at its ``created_at`` (``at``, else now, for one without): a simulation
    re-enacts when the leads came in, where the worker decides at the moment it decides. A lead its
    pool holds (``hold``) is routed again at the decision's ``retry_at``, as the worker does, before
    the rows that came after that moment (so it is yielded then; loads are never released here, so a
    lead held for room waits out its ``hold``).

    Yields (line, decision) or (line, RowError); only held leads are kept, so memory does not grow with the input.
    """
    state = InMemoryState()
    unknown = set(loads or {}) - set(config.reps)
    if unknown:
        raise LeadFileError(f"--loads names unknown reps: {', '.join(sorted(unknown))}")
    state.set_loads(loads or {})
    route = Router(config, state).route
    held: list[tuple[datetime, int, NormalizedLead]] = []  # (when to try again, line, lead)

    def due(until: datetime | None) -> Iterator[tuple[int, Decision]]:
        while held and (until is None or held[0][0] <= until):
            when, line, row = heapq.heappop(held)
            decision = route(row, at=when, hold=True)
            if decision.held and decision.retry_at is not None:
                heapq.heappush(held, (datetime.fromisoformat(decision.retry_at), line, row))
            else:
                yield line, decision

    for line, row in rows:
        if isinstance(row, RowError):
            yield line, row
            continue
        lead = normalize_lead(row)
        if held:  # the held leads due before this one came go first
            created = lead.fields.get("created_at")
            when = created if isinstance(created, datetime) else at
            yield from due(None if when is None else when if when.tzinfo else when.replace(tzinfo=UTC))
        decision = route(lead, at=at, at_created=True, hold=True)  # the past as it was: each lead at its created_at
        if decision.held and decision.retry_at is not None:
            heapq.heappush(held, (datetime.fromisoformat(decision.retry_at), line, lead))
        else:
            yield line, decision
    yield from due(None)


@dataclass
class Simulation:
    """The outcome of one simulated run, every decision kept (small inputs and tests; the CLI streams)."""

    decisions: list[Decision] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def simulate(
    config: RoutingConfig,
    rows: Iterable[tuple[int, dict[str, Any] | RowError]],
    at: datetime | None = None,
    loads: Mapping[str, int] | None = None,
) -> Simulation:
    """Route every readable row in order against one fresh in-memory state, keeping every decision."""
    result = Simulation()
    for line, item in route_rows(config, rows, at, loads):
        if isinstance(item, RowError):
            result.errors.append(item)
        else:
            result.decisions.append(item)
            result.lines.append(line)
    return result


class _PoolTally:
    """One pool's running fairness: per member, the pool's leads they were eligible for, got, and could
    expect (each lead shared among the members eligible for it, by weight), and why the rest passed them over."""

    __slots__ = ("assigned", "decisions", "eligible", "expected", "members", "shares", "skipped", "strategy",
                 "total_weight")

    def __init__(self, members: list[tuple[str, int]], strategy: str) -> None:
        self.members = members
        self.strategy = strategy
        self.decisions = 0
        self.assigned = dict.fromkeys((m for m, _ in members), 0)
        self.eligible = dict.fromkeys((m for m, _ in members), 0)
        self.expected = dict.fromkeys((m for m, _ in members), 0.0)
        self.skipped: Counter[tuple[str, str]] = Counter()
        self.total_weight = sum(w for _, w in members)
        total = self.total_weight
        self.shares = [(rep, weight / total) for rep, weight in members]  # each one's share when nobody is skipped

    def add(self, decision: Decision) -> None:
        skipped = decision.skipped
        self.decisions += 1
        assigned, eligible, expected = self.assigned, self.eligible, self.expected
        if decision.owner in assigned:
            assigned[decision.owner] += 1
        if not skipped:
            for rep, share in self.shares:
                eligible[rep] += 1
                expected[rep] += share
            return
        weights = 0
        for rep, weight in self.members:
            why = skipped.get(rep)
            if why is None:
                weights += weight
            else:
                self.skipped[(rep, why)] += 1
        if not weights:
            return
        for rep, weight in self.members:
            if rep not in skipped:
                eligible[rep] += 1
                expected[rep] += weight / weights

    def to_dict(self) -> dict[str, Any]:
        members = []
        ratios = []
        for rep, weight in self.members:
            expected = self.expected[rep]
            ratio = self.assigned[rep] / expected if expected else None
            if ratio is not None:
                ratios.append(ratio)
            members.append({"rep": rep, "weight": weight, "eligible": self.eligible[rep],
                            "assigned": self.assigned[rep], "expected": round(expected, 3),
                            "ratio": None if ratio is None else round(ratio, 3)})
        skipped = [{"rep": rep, "reason": why, "decisions": n, "share": round(n / self.decisions, 4)}
                   for (rep, why), n in sorted(self.skipped.items(), key=lambda item: (-item[1], item[0]))]
        low = min(ratios, default=None)
        return {
            "strategy": self.strategy,
            "decisions": self.decisions,
            "members": members,
            "skipped": skipped,
            "max_min": round(max(ratios) / low, 3) if low else None,
            "gini": None if not ratios else round(gini(ratios) or 0.0, 4),
        }


class Summary:
    """The running summary of a simulation: leads per owner and per rule, the fallback, each pool's balance.

    Fed one decision at a time (:meth:`add`) and holding only counters, so its size depends on
    the config, not on how many leads are routed. A pool's balance counts, for each member, only
    the leads they were eligible for: a member out of office, at capacity, outside hours, without
    a required skill or language is not owed the leads that passed them over, and ``skipped``
    says how many and why. The figures follow ``leadroute report``'s fairness: ``ratio`` is leads
    got over leads expected, ``max_min`` the highest ratio over the lowest, ``gini`` the Gini
    coefficient of the ratios (0: everyone got exactly their share).
    """

    def __init__(self, config: RoutingConfig) -> None:
        self.leads = 0
        self.errors = 0
        self.per_owner: Counter[str] = Counter()
        self.per_rule: Counter[str] = Counter()
        self.pools: dict[str, _PoolTally] = {}
        for name, pool in config.pools.items():
            weighted = pool.strategy.value == "weighted_round_robin"
            members = [(m, config.reps[m].weight if weighted and m in config.reps else 1) for m in pool.members]
            self.pools[f"pool {name}"] = _PoolTally(members, pool.strategy.value)

    def add(self, decision: Decision) -> None:
        self.leads += 1
        self.per_owner[decision.owner] += 1
        self.per_rule[decision.rule] += 1
        tally = self.pools.get(decision.target)
        if tally is not None:
            tally.add(decision)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; pools that routed nothing are left out."""
        return {
            "leads": self.leads,
            "unreadable_rows": self.errors,
            "per_owner": dict(self.per_owner.most_common()),
            "per_rule": dict(self.per_rule.most_common()),
            "fallback": self.per_rule.get(FALLBACK, 0),
            "pools": {target.removeprefix("pool "): tally.to_dict()
                      for target, tally in self.pools.items() if tally.decisions},
        }


def summarise(config: RoutingConfig, decisions: Iterable[Decision]) -> dict[str, Any]:
    """:class:`Summary` of ``decisions``, as a dict."""
    summary = Summary(config)
    for decision in decisions:
        summary.add(decision)
    return summary.to_dict()
