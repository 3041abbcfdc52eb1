"""Compile a rule's ``when:`` mapping into a fast predicate over a lead's facts.

Nothing the user writes is ever evaluated as code: every matcher is one of a fixed set
of operators, compiled once at load time into plain Python closures.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.domain.names import suggest
from worker.domain.normalize import country_code, is_blank

CANONICAL_FIELDS = (
    "id", "email", "company", "website", "country", "state", "postcode", "employees",
    "annual_revenue", "industry", "product_interest", "lead_source", "score", "language",
    "title", "created_at", "account_owner",
)
DERIVED_FIELDS = ("domain", "territory", "segment", "existing_customer", "tier")
OPERATORS = ("eq", "in", "not_in", "gte", "gt", "lte", "lt", "between", "contains", "matches", "exists")
COMBINATORS = ("any", "all", "not")

Facts = Mapping[str, Any]
Test = Callable[[Facts], bool]


class ConditionError(ValueError):
    """A ``when:`` entry that cannot be compiled; ``path`` is relative to ``when``."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled ``when:``: ``test(facts)`` and the fields it looks at (for explanations)."""

    test: Test
    fields: tuple[str, ...]


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _as_number(value: Any) -> float | None:
    kind = type(value)
    if kind is float or kind is int:
        return value
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


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _fact_equals(fact: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        if isinstance(fact, bool):
            return fact is expected
        text = str(fact).strip().casefold()
        return text in (_TRUE if expected else _FALSE)
    if isinstance(expected, float):
        number = _as_number(fact)
        return number is not None and number == expected
    if isinstance(fact, str):
        return fact.strip().casefold() == expected
    return _fold(fact) == expected


def _missing(facts: Facts, name: str) -> bool:
    value = facts.get(name)
    return value is None or (type(value) is str and is_blank(value))


def _all_of(tests: list[Test]) -> Test:
    """AND of tests without generator overhead on the hot path."""
    if not tests:
        return lambda facts: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda facts: a(facts) and b(facts)
    if len(tests) == 3:
        a, b, c = tests
        return lambda facts: a(facts) and b(facts) and c(facts)
    head, rest = tests[0], _all_of(tests[1:])
    return lambda facts: head(facts) and rest(facts)


class _Compiler:
    def __init__(self, territories: set[str], extra_fields: set[str], segments: set[str]) -> None:
        self.territories = territories
        self.segments = segments
        self.known = set(CANONICAL_FIELDS) | set(DERIVED_FIELDS) | extra_fields
        self.used: list[str] = []

    def when(self, spec: Any, path: tuple[str | int, ...]) -> Test:
        if not isinstance(spec, Mapping):
            raise ConditionError(path, "expected a mapping of field: matcher")
        return _all_of([self.entry(str(k), v, (*path, str(k))) for k, v in spec.items()])

    def entry(self, key: str, value: Any, path: tuple[str | int, ...]) -> Test:
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise ConditionError(path, f"'{key}' takes a non-empty list of conditions")
            parts = [self.when(v, (*path, i)) for i, v in enumerate(value)]
            return (lambda f: any(t(f) for t in parts)) if key == "any" else _all_of(parts)
        if key == "not":
            inner = self.when(value, path)
            return lambda facts: not inner(facts)
        if key not in self.known:
            hint = suggest(key, self.known | set(COMBINATORS))
            raise ConditionError(
                path, f"unknown lead field '{key}'{hint}; declare custom fields under 'fields:'"
            )
        if key not in self.used:
            self.used.append(key)
        return self.matcher(key, value, path)

    def literal(self, field: str, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, Mapping | list):
            raise ConditionError(path, "expected a single value here")
        if value is None:
            raise ConditionError(path, "a null value never matches; use {exists: false} for missing fields")
        if field == "country":
            code = country_code(value)
            if code is None:
                raise ConditionError(path, f"unknown country '{value}'")
            return code.casefold()
        if field == "territory" and str(value) not in self.territories:
            raise ConditionError(path, f"unknown territory '{value}'{suggest(str(value), self.territories)}")
        if field == "segment" and str(value) not in self.segments:
            raise ConditionError(path, f"unknown segment '{value}'{suggest(str(value), self.segments)}")
        return _fold(value)

    def literals(self, field: str, values: Any, path: tuple[str | int, ...]) -> list[Any]:
        if not isinstance(values, list):
            values = [values]
        return [self.literal(field, v, (*path, i)) for i, v in enumerate(values)]

    def matcher(self, field: str, value: Any, path: tuple[str | int, ...]) -> Test:
        if isinstance(value, list):
            return self.one_of(field, self.literals(field, value, path))
        if not isinstance(value, Mapping):
            expected = self.literal(field, value, path)
            if isinstance(expected, str):
                def equals_text(facts: Facts) -> bool:
                    fact = facts.get(field)
                    return type(fact) is str and fact.strip().casefold() == expected

                return equals_text
            return lambda facts: not _missing(facts, field) and _fact_equals(facts[field], expected)
        if not value:
            raise ConditionError(path, "empty matcher; give e.g. {gte: 100} or {exists: true}")
        return _all_of([self.operator(field, str(op), arg, (*path, str(op))) for op, arg in value.items()])

    def one_of(self, field: str, options: list[Any]) -> Test:
        texts = frozenset(o for o in options if isinstance(o, str))
        others = [o for o in options if not isinstance(o, str)]

        def test(facts: Facts) -> bool:
            if _missing(facts, field):
                return False
            fact = facts[field]
            if isinstance(fact, str) and fact.strip().casefold() in texts:
                return True
            return any(_fact_equals(fact, o) for o in others)

        return test

    def number(self, arg: Any, path: tuple[str | int, ...]) -> float:
        n = _as_number(arg)
        if n is None:
            raise ConditionError(path, f"expected a number, got {arg!r}")
        return n

    def operator(self, field: str, op: str, arg: Any, path: tuple[str | int, ...]) -> Test:
        if op in ("eq", "in"):
            return self.matcher(field, arg if op == "eq" or isinstance(arg, list) else [arg], path)
        if op == "not_in":
            inside = self.one_of(field, self.literals(field, arg, path))
            return lambda facts: not inside(facts)
        if op in ("gte", "gt", "lte", "lt"):
            bound = self.number(arg, path)
            compare = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}[op]

            def numeric(facts: Facts) -> bool:
                n = _as_number(facts.get(field))
                return n is not None and compare(n, bound)

            return numeric
        if op == "between":
            if not isinstance(arg, list) or len(arg) != 2:
                raise ConditionError(path, "between takes [low, high] (both inclusive)")
            low, high = self.number(arg[0], (*path, 0)), self.number(arg[1], (*path, 1))
            if low > high:
                raise ConditionError(path, f"between [{arg[0]}, {arg[1]}]: low is above high")

            def within(facts: Facts) -> bool:
                n = _as_number(facts.get(field))
                return n is not None and low <= n <= high

            return within
        if op == "contains":
            needles = [str(v).strip().casefold() for v in (arg if isinstance(arg, list) else [arg])]

            def contains(facts: Facts) -> bool:
                if _missing(facts, field):
                    return False
                text = str(facts[field]).casefold()
                return any(n in text for n in needles)

            return contains
        if op == "matches":
            try:
                pattern = re.compile(str(arg), re.IGNORECASE)
            except re.error as exc:
                raise ConditionError(path, f"invalid regular expression {arg!r}: {exc}") from None
            return lambda facts: not _missing(facts, field) and pattern.search(str(facts[field])) is not None
        if op == "exists":
            if not isinstance(arg, bool):
                raise ConditionError(path, "exists takes true or false")
            return (lambda facts: not _missing(facts, field)) if arg else (lambda facts: _missing(facts, field))
        raise ConditionError(path, f"unknown operator '{op}'{suggest(op, OPERATORS)}; use one of {', '.join(OPERATORS)}")


def compile_when(
    spec: Mapping[str, Any],
    territories: Iterable[str] = (),
    extra_fields: Iterable[str] = (),
    segments: Iterable[str] = (),
) -> Condition:
    """Compile a ``when:`` mapping; raise ConditionError pointing at the bad entry."""
    compiler = _Compiler(set(territories), set(extra_fields), set(segments))
    test = compiler.when(spec, ())
    return Condition(test, tuple(compiler.used))
