"""Static checks on a routing config, beyond what loading it validates: what `leadroute check` reports.

Pure: it reads nothing and writes nothing; the caller gives the config, its text (for line
numbers) and the clock. Each finding is located ``file:line`` like a load warning.

* **shadowed_rule** - a rule no lead can ever reach, because earlier rules together match
  everything it matches. Proved, never guessed: each field's values are cut into the pieces
  the conditions tell apart, and a rule is shadowed only when every combination of pieces it
  matches is matched earlier. Conditions the analysis cannot reason about (``contains``,
  ``matches``, a list mixing text and numbers) become free yes/no facts of their own, which
  can only hide a shadowed rule, never invent one; ``territory`` and ``segment`` are taken
  as free too (the analysis does not derive them from country or employees).
* **coverage_gap** - territory x segment combinations where a lead with no other facts
  reaches the fallback. Every gap is shown by a concrete lead the engine itself routes.
* **empty_pool** - a pool (or the part of it a rule's required skills leave) that has
  nobody to give a lead to: all inactive, at capacity 0, or out of office in the next days.
* **unreachable_rep** - an active rep no routing path leads to.

Overlapping territories are reported when the config loads (``worker.config.schema``);
:func:`kind_of` names those and the other load warnings for ``check --json``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.config import RoutingConfig
from worker.config.schema import Problem
from worker.config.yamlpos import PathKey, line_for, load_with_lines
from worker.domain.normalize import country_code
from worker.routing.engine import FALLBACK, Router
from worker.routing.state import InMemoryState

SHADOWED_RULE = "shadowed_rule"
COVERAGE_GAP = "coverage_gap"
OVERLAPPING_TERRITORIES = "overlapping_territories"
EMPTY_POOL = "empty_pool"
UNREACHABLE_REP = "unreachable_rep"
CONFIG = "config"  # any other warning from loading the file
KINDS = (SHADOWED_RULE, COVERAGE_GAP, OVERLAPPING_TERRITORIES, EMPTY_POOL, UNREACHABLE_REP, CONFIG)

DEFAULT_OOO_DAYS = 7
MAX_BOXES = 20_000  # past this many pieces a rule's analysis gives up: "unknown", not shadowed
MAX_WITNESSES = 20_000  # leads routed per check for coverage gaps (about 40 us each)


@dataclass(frozen=True, slots=True)
class Finding:
    """One warning from a check: which check, and where."""

    kind: str
    problem: Problem

    def __str__(self) -> str:
        return str(self.problem)


def kind_of(warning: Problem) -> str:
    """Which check a warning from loading the config belongs to (for ``check --json``)."""
    if warning.path.startswith("territories."):
        return OVERLAPPING_TERRITORIES
    if warning.path.startswith("rules[") and "can never match" in warning.message:
        return SHADOWED_RULE
    return CONFIG


def run_checks(config: RoutingConfig, text: str, now: datetime, ooo_days: int = DEFAULT_OOO_DAYS) -> list[Finding]:
    """Every finding for a loaded config; ``text`` is the file it was loaded from, ``now`` the clock
    (UTC when it has no time zone)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    _, lines = load_with_lines(text, config.file)
    ctx = _Ctx(config, lines)
    shadowed = shadowed_rules(ctx)
    out = [f for f, _ in shadowed]
    out += coverage_gaps(ctx, now)
    out += empty_pools(ctx, now, ooo_days)
    rules = config.model.rules
    dead = {i for _, i in shadowed}
    dead |= {j for i, r in enumerate(rules) if not r.when for j in range(i + 1, len(rules))}  # warned on load
    dead -= {i for i, r in enumerate(rules) if r.name in _used_by_triggers(config)}  # live where a trigger routes
    out += unreachable_reps(ctx, dead)
    return out


def _used_by_triggers(config: RoutingConfig) -> set[str]:
    """Top-level rules a hand-off trigger routes by (``use_rules``): they are used there, in the trigger's
    own order, even when earlier top-level rules leave them no new lead."""
    return {n for t in config.model.triggers for n in t.use_rules}


def check_shadowed(config: RoutingConfig, text: str) -> list[Finding]:
    """Only the shadowed-rule check (see :func:`run_checks`)."""
    return [f for f, _ in shadowed_rules(_Ctx(config, load_with_lines(text, config.file)[1]))]


@dataclass(frozen=True)
class _Ctx:
    config: RoutingConfig
    lines: dict[PathKey, int]

    def finding(self, kind: str, path: PathKey, message: str) -> Finding:
        return Finding(kind, Problem(self.config.file, line_for(self.lines, path), _dotted(path), message))


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _quoted(names: Sequence[str]) -> str:
    items = [f"'{n}'" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- conditions as formulas over finite pieces -------------------------------------------------

# A formula: ("and", [f...]) | ("or", [f...]) | ("not", f) | ("true",) | atom.
# Atoms: ("text", field, frozenset[str]) | ("num", field, lo, lo_closed, hi, hi_closed)
#        | ("bool", field, frozenset[bool]) | ("exists", field, bool) | ("opaque", key)
Formula = tuple[Any, ...]
TRUE: Formula = ("true",)


def _fold(value: Any) -> Any:
    """A literal as the engine compares it (see worker.routing.conditions)."""
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def formula(spec: Any) -> Formula:
    """A rule's (already validated) ``when:`` as a formula, mirroring the engine's compiler."""
    if not isinstance(spec, Mapping):
        return ("opaque", ("when", repr(spec)))
    return ("and", [_entry(str(k), v) for k, v in spec.items()])


def _entry(key: str, value: Any) -> Formula:
    if key in ("any", "all") and isinstance(value, list):
        parts = [formula(v) for v in value]
        return ("or", parts) if key == "any" else ("and", parts)
    if key == "not":
        return ("not", formula(value))
    return _matcher(key, value)


def _literal(field: str, value: Any) -> Any:
    if field == "country":
        code = country_code(value)
        return code.casefold() if code else None
    return _fold(value)


def _one_of(field: str, values: Sequence[Any]) -> Formula:
    folded = [_literal(field, v) for v in values]
    if any(v is None or v == "" for v in folded):
        return ("opaque", (field, "in", repr(values)))
    if all(isinstance(v, str) for v in folded):
        return ("text", field, frozenset(folded))
    if all(isinstance(v, bool) for v in folded):
        return ("bool", field, frozenset(folded))
    if all(isinstance(v, float) for v in folded):
        return ("or", [("num", field, v, True, v, True) for v in folded])
    return ("opaque", (field, "in", repr(values)))


def _matcher(field: str, value: Any) -> Formula:
    if isinstance(value, list):
        return _one_of(field, value)
    if not isinstance(value, Mapping):
        return _one_of(field, [value])
    return ("and", [_operator(field, str(op), arg) for op, arg in value.items()])


def _operator(field: str, op: str, arg: Any) -> Formula:
    if op in ("eq", "in"):
        return _matcher(field, arg if op == "eq" or isinstance(arg, list) else [arg])
    if op == "not_in":
        return ("not", _one_of(field, arg if isinstance(arg, list) else [arg]))
    if op in ("gte", "gt", "lte", "lt"):
        n = _number(arg)
        if n is None:
            return ("opaque", (field, op, repr(arg)))
        return {"gte": ("num", field, n, True, math.inf, False), "gt": ("num", field, n, False, math.inf, False),
                "lte": ("num", field, -math.inf, False, n, True), "lt": ("num", field, -math.inf, False, n, False)}[op]
    if op == "between" and isinstance(arg, list) and len(arg) == 2:
        low, high = _number(arg[0]), _number(arg[1])
        if low is not None and high is not None:
            return ("num", field, low, True, high, True)
    if op == "exists" and isinstance(arg, bool):
        return ("exists", field, arg)
    return ("opaque", (field, op, repr(arg)))  # contains, matches: the analysis does not look inside


def _atoms(f: Formula) -> Iterable[Formula]:
    if f[0] in ("and", "or"):
        for part in f[1]:
            yield from _atoms(part)
    elif f[0] == "not":
        yield from _atoms(f[1])
    elif f[0] != "true":
        yield f


MISSING, OTHER, NOT_A_NUMBER = "<missing>", "<other>", "<not a number>"
WHOLE_NUMBERS = ("employees",)  # normalised by parse_count: never 99.5 employees


def _has_whole(cell: tuple[Any, ...]) -> bool:
    if cell[0] == "point":
        return float(cell[1]).is_integer()
    lo, hi = cell[1], cell[2]
    return math.isinf(lo) or math.isinf(hi) or math.floor(lo) + 1 < hi


class _Space:
    """The pieces each field's values fall into: every atom is either true or false on a whole piece."""

    def __init__(self, formulas: Iterable[Formula]) -> None:
        by_field: dict[str, list[Formula]] = {}
        for f in formulas:
            for atom in _atoms(f):
                if atom[0] != "opaque":
                    by_field.setdefault(atom[1], []).append(atom)
        self.mixed: set[str] = set()
        self.cells: dict[Any, tuple[Any, ...]] = {}
        for field, atoms in by_field.items():
            kinds = {a[0] for a in atoms if a[0] != "exists"}
            if len(kinds) > 1:
                self.mixed.add(field)  # e.g. text and numbers on one field: each atom is its own yes/no
                kinds = set()
            cells: list[Any] = [MISSING]
            if kinds == {"text"}:
                cells += [*sorted({v for a in atoms if a[0] == "text" for v in a[2]}), OTHER]
            elif kinds == {"bool"}:
                cells += [True, False, OTHER]
            elif kinds == {"num"}:
                points = sorted({b for a in atoms if a[0] == "num" for b in (a[2], a[4]) if math.isfinite(b)})
                bounds = [-math.inf, *points, math.inf]
                cells.append(NOT_A_NUMBER)
                for i, p in enumerate(points):
                    cells += [("open", bounds[i], p), ("point", p)]
                cells.append(("open", bounds[-2], math.inf))
                if field in WHOLE_NUMBERS:
                    cells = [c for c in cells if not isinstance(c, tuple) or _has_whole(c)]
            else:
                cells.append(OTHER)
            self.cells[field] = tuple(cells)

    def dimension(self, atom: Formula) -> Any:
        if atom[0] == "opaque":
            return ("?", atom[1])
        if atom[1] in self.mixed and atom[0] != "exists":
            return ("?", atom)
        return atom[1]

    def universe(self, dim: Any) -> frozenset[Any]:
        return frozenset((True, False)) if isinstance(dim, tuple) else frozenset(self.cells[dim])

    def allowed(self, atom: Formula) -> tuple[Any, frozenset[Any]]:
        """The atom as (dimension, the pieces where it holds)."""
        dim = self.dimension(atom)
        if isinstance(dim, tuple):
            return dim, frozenset((True,))
        return dim, frozenset(c for c in self.cells[dim] if _holds(atom, c))


def _sample(cell: Any) -> float:
    if cell[0] == "point":
        return cell[1]
    lo, hi = cell[1], cell[2]
    if math.isinf(lo):
        return hi - 1
    if math.isinf(hi):
        return lo + 1
    return (lo + hi) / 2


def _holds(atom: Formula, cell: Any) -> bool:
    kind = atom[0]
    if kind == "exists":
        return (cell != MISSING) is atom[2]
    if cell in (MISSING, OTHER, NOT_A_NUMBER):
        return False
    if kind == "text" or kind == "bool":
        return cell in atom[2]
    x = _sample(cell)
    _, _, lo, lo_closed, hi, hi_closed = atom
    return (x > lo or (lo_closed and x == lo)) and (x < hi or (hi_closed and x == hi))


Box = dict[Any, frozenset[Any]]  # a dimension left out allows every piece


class _TooBig(Exception):
    pass


class _Regions:
    """Unions of boxes (one set of pieces per dimension): intersect, complement, subtract."""

    def __init__(self, space: _Space) -> None:
        self.space = space

    def of(self, f: Formula) -> list[Box]:
        kind = f[0]
        if kind == "true":
            return [{}]
        if kind == "and":
            region: list[Box] = [{}]
            for part in f[1]:
                region = self.intersect(region, self.of(part))
            return region
        if kind == "or":
            return self._capped([b for part in f[1] for b in self.of(part)])
        if kind == "not":
            return self.subtract([{}], self.of(f[1]))
        dim, cells = self.space.allowed(f)
        return [{dim: cells}] if cells else []

    def _capped(self, region: list[Box]) -> list[Box]:
        if len(region) > MAX_BOXES:
            raise _TooBig
        return region

    def intersect(self, a: list[Box], b: list[Box]) -> list[Box]:
        out = []
        for x in a:
            for y in b:
                box = dict(x)
                empty = False
                for dim, cells in y.items():
                    box[dim] = box[dim] & cells if dim in box else cells
                    if not box[dim]:
                        empty = True
                        break
                if not empty:
                    out.append(box)
        return self._capped(out)

    def subtract(self, a: list[Box], b: list[Box]) -> list[Box]:
        region = a
        for y in b:
            region = self._capped([piece for x in region for piece in self._minus(x, y)])
            if not region:
                break
        return region

    def _minus(self, x: Box, y: Box) -> list[Box]:
        """``x`` without ``y``, as disjoint boxes."""
        pieces = []
        rest = dict(x)
        for dim, cells in y.items():
            mine = rest.get(dim, self.space.universe(dim))
            inside = mine & cells
            if not inside:
                return [x]  # no lead is in both
            if mine - inside:
                pieces.append({**rest, dim: mine - inside})
            rest[dim] = inside
        return pieces


def _possible(config: RoutingConfig, space: _Space, regions: _Regions) -> list[Box]:
    """Where leads can be, beyond each field on its own: a lead from a country that a territory
    takes whole is always in a territory (the engine overrides any ``territory`` the lead brings),
    one of those listing the country: with ``first_match`` one up to the first that takes it whole."""
    if "territory" not in space.cells or "territory" in space.mixed or "country" in space.mixed:
        return [{}]
    names = space.cells["territory"]
    region: list[Box] = [{}]
    for cell in space.cells.get("country", ()):
        if cell in (MISSING, OTHER):
            continue
        containing = [(name, bool(states or postcodes)) for name, countries, states, postcodes in config.territory_order
                      if cell.upper() in countries]
        whole = [i for i, (_, narrowed) in enumerate(containing) if not narrowed]
        if not whole:
            continue  # a lead from there may be in no territory, and bring its own
        if config.model.territory_overlap == "first_match":
            containing = containing[: whole[0] + 1]
        allowed = {n.strip().casefold() if n.strip().casefold() in names else OTHER for n, _ in containing}
        region = regions.subtract(region, [{"country": frozenset((cell,)), "territory": frozenset(names) - allowed}])
    return region


def shadowed_rules(ctx: _Ctx) -> list[tuple[Finding, int]]:
    """Rules that can never match, each with its index; rules after a rule without conditions are
    left to the load warning that already names them."""
    rules = ctx.config.model.rules
    used = _used_by_triggers(ctx.config)
    formulas = [formula(r.when) for r in rules]
    space = _Space(formulas)
    regions = _Regions(space)
    possible = _possible(ctx.config, space, regions)
    out: list[tuple[Finding, int]] = []
    seen: list[tuple[int, list[Box]]] = []
    for j, rule in enumerate(rules):
        if any(not rules[i].when for i in range(j)):
            break  # reported on load: "above it has no conditions"
        try:
            mine = regions.intersect(regions.of(formulas[j]), possible)
            if not mine:
                out.append((ctx.finding(SHADOWED_RULE, ("rules", j), (
                    f"rule '{rule.name}' can never match: no lead meets all of its conditions at once")), j))
                seen.append((j, mine))
                continue
            rest = mine
            for _, earlier in seen:
                rest = regions.subtract(rest, earlier)
                if not rest:
                    break
            takers = [rules[i].name for i, earlier in seen if earlier and regions.intersect(mine, earlier)]
        except _TooBig:
            seen.append((j, []))  # unknown: never claimed, and not used to claim others
            continue
        if not rest:
            lines = [line_for(ctx.lines, ("rules", i)) for i, _ in seen if rules[i].name in takers]
            where = ", ".join(f"line {n}" for n in lines)
            by = f"rule {_quoted(takers)} above it ({where}) matches" if len(takers) == 1 else \
                f"rules {_quoted(takers)} above it ({where}) together match"
            out.append((ctx.finding(SHADOWED_RULE, ("rules", j), (
                f"rule '{rule.name}' can never match: {by} every lead it matches")), j))
        seen.append((j, mine))
    # a rule a trigger routes by is used there, whatever the rules above it here take (it still claims here)
    return [(f, j) for f, j in out if rules[j].name not in used]


# --- coverage gaps ------------------------------------------------------------------------------

_PLACE_FIELDS = ("country", "state", "postcode", "territory")  # set by the location a sample lead is given
_OTHER_COUNTRIES = ("BR", "JP", "ZA", "AU", "IN", "MX", "NG", "AR", "KR", "SG", "NZ", "EG")


def _number_samples(cells: Sequence[Any]) -> list[float | None]:
    """One value per numeric piece, a whole number where the piece has one; None for unknown."""
    out: list[float | None] = [None]
    for cell in cells:
        if not isinstance(cell, tuple):
            continue
        if cell[0] == "point":
            out.append(cell[1])
            continue
        lo, hi = cell[1], cell[2]
        if math.isinf(lo):
            out.append(float(math.ceil(hi) - 1))
        elif math.isinf(hi):
            out.append(float(math.floor(lo) + 1))
        else:
            whole = math.floor(lo) + 1
            out.append(float(whole) if whole < hi else (lo + hi) / 2)
    return out


def _segment_samples(config: RoutingConfig) -> tuple[list[dict[str, Any]], bool]:
    """Values for the fields the segments read, one per piece the rules and segments tell apart, and
    whether that is every combination (False when there were too many to try)."""
    segment_formulas = [formula(spec) for spec in config.model.segments.values()]
    fields = sorted({a[1] for f in segment_formulas for a in _atoms(f) if a[0] != "opaque"} - set(_PLACE_FIELDS))
    space = _Space([*segment_formulas, *(formula(r.when) for r in config.model.rules)])
    choices: list[list[Any]] = []
    for field in fields:
        cells = space.cells.get(field, (MISSING, OTHER))
        if any(isinstance(c, tuple) for c in cells):
            values: list[Any] = [*_number_samples(cells), "not-a-number"]
        else:
            values = [None] + [c for c in cells if isinstance(c, str | bool) and c not in (MISSING, OTHER)] + ["zz-other"]
        choices.append(values)
    samples = []
    for combo in itertools.islice(itertools.product(*choices), MAX_WITNESSES + 1):
        samples.append({f: (int(v) if isinstance(v, float) and v.is_integer() else v)
                        for f, v in zip(fields, combo, strict=True) if v is not None})
    return samples[:MAX_WITNESSES] or [{}], len(samples) <= MAX_WITNESSES


def _place_samples(config: RoutingConfig) -> list[dict[str, Any]]:
    """A lead's location for each country, state and postcode prefix the territories and rules name,
    and some in no territory (no country, a country nobody covers)."""
    out: list[dict[str, Any]] = [{}]
    named: set[str] = set()
    for _, countries, states, postcodes in config.territory_order:
        for country in sorted(countries):
            named.add(country)
            places: list[dict[str, Any]] = [{"country": country}]
            if states:
                places += [{"country": country, "state": s} for s in sorted(states)]
            if postcodes:
                places += [{**p, "postcode": (c.ljust(5, "0") if c.isdigit() else c)} for p in list(places) for c in postcodes]
            out += places
    for rule in config.model.rules:
        for atom in _atoms(formula(rule.when)):
            if atom[0] == "text" and atom[1] == "country":
                named.update(c.upper() for c in atom[2])
                out += [{"country": c.upper()} for c in sorted(atom[2])]
    out += [{"country": c} for c in _OTHER_COUNTRIES if c not in named][:1]
    unique = list({tuple(sorted(p.items())): p for p in out}.values())
    return unique


def _place_words(place: Mapping[str, Any]) -> str:
    if not place:
        return "with no country"
    text = "from " + str(place["country"])
    if "state" in place:
        text += "-" + str(place["state"])
    if "postcode" in place:
        text += " " + str(place["postcode"])
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"
    return str(value)


def _sample_words(sample: Mapping[str, Any], fields: Sequence[str]) -> str:
    """`` with 500 employees`` (the known facts), or `` with employees and annual revenue unknown``."""
    def label(field: str) -> str:
        return field.replace("_", " ")

    known = [f"{_fmt(sample[f])} employees" if f == "employees" else f"{label(f)} {_fmt(sample[f])}"
             for f in fields if f in sample]
    if known:
        return " with " + ", ".join(known)
    return f" with {' and '.join(label(f) for f in fields)} unknown" if fields else ""


_OP_WORDS = {"gte": "{v}+", "gt": "over {v}", "lte": "up to {v}", "lt": "under {v}"}


def when_words(spec: Any) -> str:
    """A segment's condition in words: ``{employees: {between: [100, 999]}}`` -> ``100\N{EN DASH}999 employees``."""
    if not isinstance(spec, Mapping):
        return str(spec)
    parts = []
    for key, value in spec.items():
        if key == "any" and isinstance(value, list):
            parts.append(" or ".join(when_words(v) for v in value))
        elif key == "all" and isinstance(value, list):
            parts.append(", ".join(when_words(v) for v in value))
        elif key == "not":
            parts.append(f"not ({when_words(value)})")
        elif isinstance(value, Mapping) and len(value) == 1:
            ((op, arg),) = value.items()
            unit = " employees" if key == "employees" else ""
            label = "" if unit else key.replace("_", " ") + " "
            if op == "between" and isinstance(arg, list) and len(arg) == 2:
                parts.append(f"{label}{_fmt(arg[0])}\N{EN DASH}{_fmt(arg[1])}{unit}")
            elif op in _OP_WORDS:
                parts.append(label + _OP_WORDS[op].format(v=_fmt(arg)) + unit)
            elif op == "exists":
                parts.append(f"{key.replace('_', ' ')} {'known' if arg else 'unknown'}")
            else:
                parts.append(f"{key.replace('_', ' ')} {op} {arg}")
        elif isinstance(value, list):
            parts.append(f"{key.replace('_', ' ')} in {', '.join(map(str, value))}")
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


@dataclass
class _Cell:
    fell: list[tuple[dict[str, Any], dict[str, Any]]]
    caught: int = 0


def coverage_gaps(ctx: _Ctx, now: datetime) -> list[Finding]:
    """Territory x segment combinations where a lead with no other facts reaches the fallback.

    Each lead tried has only a location and the facts the segments read, and is routed by the
    engine itself: a gap is reported only when one such lead matched no rule.
    """
    config = ctx.config
    model = config.model
    if not model.territories and not model.segments:
        return []
    samples, complete = _segment_samples(config) if model.segments else ([{}], True)
    seg_fields = sorted({k for s in samples for k in s})
    places = _place_samples(config) if model.territories else [{}]
    if len(places) * len(samples) > MAX_WITNESSES:  # every place, with evenly spaced samples (the first: all unknown)
        samples = samples[::math.ceil(len(places) * len(samples) / MAX_WITNESSES)]
        complete = False
    router = Router(config, InMemoryState())
    cells: dict[tuple[str | None, str | None], _Cell] = {}
    for place, sample in itertools.product(places, samples):
        lead = {"id": "check", **place, **sample}
        decision = router.route(lead, at=now)
        key = (decision.facts.get("territory"), decision.facts.get("segment"))
        cell = cells.setdefault(key, _Cell([]))
        if decision.rule == FALLBACK and decision.reason.startswith("no rule matched"):
            cell.fell.append((place, sample))
        else:
            cell.caught += 1
    territories: list[str | None] = [*(t for t in model.territories if any(k[0] == t for k in cells)), None] \
        if model.territories else [None]
    segments: list[str | None] = [*model.segments, None] if model.segments else [None]

    def full(t: str | None, s: str | None) -> bool:
        cell = cells.get((t, s))
        return cell is not None and bool(cell.fell) and cell.caught == 0

    def example(t: str | None, s: str | None) -> str:
        place, sample = cells[(t, s)].fell[0]
        facts = _sample_words(sample, seg_fields)
        if not model.territories:
            return f"a lead{facts} and no other facts"
        if not place and facts:
            facts = "," + facts.removeprefix(" with")
        return f"a lead {_place_words(place)}{facts} and no other facts"

    def named(s: str | None) -> str:
        return f"segment {s} ({when_words(model.segments[s])})" if s is not None else "no segment"

    sure = complete and _exhaustive(config)
    out: list[Finding] = []
    for t in territories:
        row = [s for s in segments if (t, s) in cells]
        gaps = [s for s in row if cells[(t, s)].fell]
        if not gaps:
            continue
        who = f"{t} leads" if t else ("leads in no territory" if model.territories else "leads")
        who += " with no other facts"  # what the leads tried had, and so all that is proved
        path: PathKey = ("territories", t) if t else ("fallback",)
        whole = [s for s in gaps if sure and full(t, s)]
        some = [s for s in gaps if s not in whole]
        first = (whole or some)[0]
        if not model.segments:
            message = f"{'' if whole else 'some '}{who} reach the fallback (e.g. {example(t, first)})"
        elif len(whole) == len(row):
            message = f"{who} reach the fallback whatever their segment (e.g. {example(t, first)})"
        else:
            parts = []
            if whole:
                parts.append("every one in " + " or in ".join(named(s) for s in whole))
            if some:
                parts.append("some in " + " or in ".join(named(s) for s in some))
            message = f"{who} reach the fallback: {'; '.join(parts)} (e.g. {example(t, first)})"
        out.append(ctx.finding(COVERAGE_GAP, path, message))
    return out


def _exhaustive(config: RoutingConfig) -> bool:
    """Whether the sample leads stand for every lead with only a location and segment facts, so a
    cell where all of them fell can be called whole: no rule or segment reading
    a state, postcode or lead id, or a location or segment field in a way the analysis cannot cut."""
    formulas = [formula(r.when) for r in config.model.rules] + [formula(s) for s in config.model.segments.values()]
    space = _Space(formulas)
    segment_fields = {a[1][0] if a[0] == "opaque" else a[1] for s in config.model.segments.values() for a in _atoms(formula(s))}
    for f in formulas:
        for atom in _atoms(f):
            field = atom[1][0] if atom[0] == "opaque" else atom[1]
            if field in ("state", "postcode", "id", "when") or (
                    (field in segment_fields or field in _PLACE_FIELDS) and (atom[0] == "opaque" or field in space.mixed)):
                return False
    return True


# --- pools with nobody to take a lead ------------------------------------------------------------

Span = tuple[datetime, datetime]


def _away_spans(config: RoutingConfig, rep_id: str, start: datetime, end: datetime) -> list[Span]:
    """When, within [start, end), a rep can take no lead: inactive or capacity 0 (all of it), out of office."""
    rep = config.reps[rep_id]
    if not rep.active or rep.capacity == 0:
        return [(start, end)]
    zone = config.zones[rep_id]
    spans = []
    for window in rep.out_of_office:
        a = datetime.combine(window.start, datetime.min.time(), zone)
        b = datetime.combine(window.end + timedelta(days=1), datetime.min.time(), zone)
        a, b = max(a, start), min(b, end)
        if a < b:
            spans.append((a, b))
    spans.sort()
    merged: list[Span] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _common(a: list[Span], b: list[Span]) -> list[Span]:
    out = []
    for x0, x1 in a:
        for y0, y1 in b:
            lo, hi = max(x0, y0), min(x1, y1)
            if lo < hi:
                out.append((lo, hi))
    return out


def _why_away(config: RoutingConfig, rep_id: str) -> str:
    rep = config.reps[rep_id]
    return "inactive" if not rep.active else "capacity 0" if rep.capacity == 0 else "out of office"


def _when(span: Span) -> str:
    return f"{span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M} UTC"


def _nobody(config: RoutingConfig, members: Sequence[str], now: datetime, days: int) -> tuple[str, list[Span]] | None:
    """When ``members`` are all unavailable within the next ``days`` (and how), or None."""
    start = now
    end = start + timedelta(days=days)
    common: list[Span] = [(start, end)]
    for rep_id in members:
        common = _common(common, _away_spans(config, rep_id, start, end))
        if not common:
            return None
    reasons = sorted({_why_away(config, r) for r in members})
    return " or ".join(reasons), [(a.astimezone(now.tzinfo), b.astimezone(now.tzinfo)) for a, b in common]


def empty_pools(ctx: _Ctx, now: datetime, days: int = DEFAULT_OOO_DAYS) -> list[Finding]:
    """Pools with nobody to give a lead to, now or on some day soon; so too the members a rule's
    required skills or languages leave."""
    config = ctx.config
    out = []
    for name, pool in config.pools.items():
        found = _nobody(config, pool.members, now, days)
        if found is None:
            continue
        how, spans = found
        users = list(dict.fromkeys(r.name for r in config.rules for a, _ in _targets(r) if a.pool == name))
        effect = (f": rule {_quoted(users)} sends every lead it matches to the fallback" if len(users) == 1
                  else f": rules {_quoted(users)} send every lead they match to the fallback" if users else "")
        if spans == [(now, now + timedelta(days=days))] and how != "out of office":
            message = f"pool '{name}' has nobody who can take a lead ({how}: {', '.join(pool.members)}){effect}"
        elif spans == [(now, now + timedelta(days=days))]:
            message = f"pool '{name}': every member is out of office for the next {days} days{effect}"
        else:
            message = (f"pool '{name}' has nobody available from {'; '.join(_when(s) for s in spans)} "
                       f"(every member {how}, within the next {days} days){effect} then")
        out.append(ctx.finding(EMPTY_POOL, ("pools", name, "members"), message))
    for i, rule in enumerate(config.rules):
        for assign, where in _targets(rule):
            if assign.pool and (assign.require_skills or assign.require_languages):
                out += _short_of_skills(ctx, rule.name, assign, ("rules", i, *where), now, days)
    return out


def _targets(rule: Any) -> list[tuple[Any, PathKey]]:
    """A rule's targets, each with its path under the rule: its assign, or each arm's in an A/B split."""
    split = getattr(rule, "split", None)
    if split is not None:
        return [(arm.assign, ("split", "arms", k, "assign")) for k, arm in enumerate(split.arms)]
    return [(rule.assign, ("assign",))]


def _fits(config: RoutingConfig, rep_id: str, assign: Any) -> bool:
    rep = config.reps[rep_id]
    return all(s in rep.skills for s in assign.require_skills) and (
        not assign.require_languages or any(g in rep.languages for g in assign.require_languages))


def _short_of_skills(ctx: _Ctx, name: str, assign: Any, path: PathKey, now: datetime, days: int) -> list[Finding]:
    """The members of a pool that a target's required skills or languages leave: none, or all away soon."""
    config = ctx.config
    members = config.pools[assign.pool].members
    fit = [m for m in members if _fits(config, m, assign)]
    need = ", ".join([*(f"skill {s}" for s in assign.require_skills),
                      *(["language " + " or ".join(assign.require_languages)] if assign.require_languages else [])])
    if not fit:
        return [ctx.finding(EMPTY_POOL, path, (
            f"rule '{name}' needs {need}, which no member of pool '{assign.pool}' has: "
            "every lead it sends there goes to the fallback"))]
    if len(fit) == len(members):
        return []  # the same people as the pool: reported with the pool
    found = _nobody(config, fit, now, days)
    if found is None:
        return []
    how, spans = found
    return [ctx.finding(EMPTY_POOL, path, (
        f"rule '{name}': the members of pool '{assign.pool}' with {need} ({', '.join(fit)}) are all "
        f"{how} from {'; '.join(_when(s) for s in spans)}: the leads it sends there go to the fallback then"))]


def _some(names: Sequence[str], shown: int = 3) -> str:
    return ", ".join(names) if len(names) <= shown + 1 else f"{', '.join(names[:shown])} and {len(names) - shown} more"


# --- reps no lead can reach ----------------------------------------------------------------------


def unreachable_reps(ctx: _Ctx, shadowed: set[int] | frozenset[int] = frozenset()) -> list[Finding]:
    """Active reps that no routing path reaches: in no pool a rule (or a trigger's own rule) uses (with the
    skills it needs), no rule's rep, not the fallback, nobody's backup, no account's owner. Being someone's manager is no
    path: SLA escalations notify the manager and never give them the lead, so such a rep is named as
    receiving escalations only."""
    config = ctx.config
    model = config.model
    live = [r for i, r in enumerate(model.rules) if i not in shadowed]
    live += [r for t in model.triggers for r in t.rules]  # a hand-off trigger's own rules lead somewhere too
    reached: set[str] = set()
    for rule in live:
        for a, _ in _targets(rule):
            if a.rep:
                reached.add(a.rep)
            if a.pool:
                reached.update(m for m in config.pools[a.pool].members if _fits(config, m, a))
    if model.fallback.rep:
        reached.add(model.fallback.rep)
    owners = [r for r in live if any(a.account_owner for a, _ in _targets(r))]
    if owners:
        reached.update(model.accounts.values())
    managed: dict[str, list[str]] = {}
    for r in model.reps:
        if r.manager:
            managed.setdefault(r.manager, []).append(r.id)
    frontier = list(reached)
    while frontier:
        rep = config.reps.get(frontier.pop())
        if rep is not None and rep.backup and rep.backup not in reached:
            reached.add(rep.backup)
            frontier.append(rep.backup)
    out = []
    for i, rep in enumerate(model.reps):
        if not rep.active or rep.id in reached:
            continue
        path: PathKey = ("reps", i, "id")
        nowhere = "in no pool a rule uses, no rule's rep, not the fallback, nobody's backup"
        manages = f"manager of {_some(managed[rep.id])}" if rep.id in managed else ""
        if owners and manages:
            message = (f"rep '{rep.id}' receives escalations ({manages}) and gets leads only as a CRM account owner "
                       f"(rule '{owners[0].name}'): {nowhere}")
        elif owners:
            message = f"rep '{rep.id}' gets leads only as a CRM account owner (rule '{owners[0].name}'): {nowhere}"
        elif manages:
            message = f"rep '{rep.id}' receives escalations only, never a lead: {manages}, but {nowhere}"
        else:
            message = f"rep '{rep.id}' can never receive a lead: {nowhere}"
        out.append(ctx.finding(UNREACHABLE_REP, path, message))
    return out
