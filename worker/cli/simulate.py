"""Offline simulation: route an export of leads against a config and summarise where they went."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from worker.config import RoutingConfig
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


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
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
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield line, RowError(line, f"expected {len(names)} columns as in the header, found {len(row)}")
                continue
            yield line, dict(zip(names, row, strict=True))


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with path.open(encoding="utf-8") as handle:
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


def read_leads(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Yield (line, lead or RowError) from a CSV (header row) or JSON Lines file, in file order."""
    if not path.is_file():
        raise LeadFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    if suffix in (".csv", ".txt"):
        return _read_csv(path)
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


@dataclass
class Simulation:
    """The outcome of one simulated run."""

    decisions: list[Decision] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def simulate(
    config: RoutingConfig,
    rows: Iterator[tuple[int, dict[str, Any] | RowError]],
    at: datetime | None = None,
    loads: Mapping[str, int] | None = None,
) -> Simulation:
    """Route every readable row in order against one fresh in-memory state."""
    state = InMemoryState()
    unknown = set(loads or {}) - set(config.reps)
    if unknown:
        raise LeadFileError(f"--loads names unknown reps: {', '.join(sorted(unknown))}")
    state.set_loads(loads or {})
    router = Router(config, state)
    result = Simulation()
    for line, row in rows:
        if isinstance(row, RowError):
            result.errors.append(row)
            continue
        result.decisions.append(router.route(row, at=at))
        result.lines.append(line)
    return result


def summarise(config: RoutingConfig, decisions: list[Decision]) -> dict[str, Any]:
    """Leads per owner and per rule, fallback count, and the balance within each pool."""
    per_owner = Counter(d.owner for d in decisions)
    per_rule = Counter(d.rule for d in decisions)
    pools: dict[str, dict[str, Any]] = {}
    for name, pool in config.pools.items():
        counts = Counter(d.owner for d in decisions if d.target == f"pool {name}")
        members = {m: counts.get(m, 0) for m in pool.members}
        if not sum(members.values()):
            continue
        pools[name] = {
            "strategy": pool.strategy.value,
            "counts": members,
            "spread": max(members.values()) - min(members.values()),
        }
    return {
        "leads": len(decisions),
        "per_owner": dict(per_owner.most_common()),
        "per_rule": dict(per_rule.most_common()),
        "fallback": per_rule.get(FALLBACK, 0),
        "pools": pools,
    }
