"""CRM fields -> canonical lead fields, and the intake/acknowledgement conditions evaluated locally.

Conditions are pushed down into SOQL or HubSpot search filters where possible, but the CRM
query is only ever a *superset* (some tests cannot be expressed, and the two CRMs disagree
about how missing values compare); the answer that counts is this module's, evaluated on
the record we read. Its semantics are documented on :class:`connectors.settings.Condition`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from connectors.settings import Condition

__all__ = ["as_text", "compile_condition", "evaluate", "to_lead"]


def as_text(value: Any) -> str:
    """The comparison form of a value: missing -> ``""``, booleans ``true``/``false``,
    integral numbers without ``.0``, text stripped and case-folded."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip().casefold()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _compare(actual: Any, op: str, bound: Any) -> bool:
    if as_text(actual) == "":
        return False
    a, b = _number(actual), _number(bound)
    left: Any
    right: Any
    if a is not None and b is not None:
        left, right = a, b
    else:
        left, right = as_text(actual), as_text(bound)
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


Test = Callable[[Any], bool]


def _compile_test(op: str, operand: Any) -> Test:
    if op == "eq":
        target = as_text(operand)
        return lambda value: as_text(value) == target
    if op == "ne":
        target = as_text(operand)
        return lambda value: as_text(value) != target
    if op == "in":
        targets = frozenset(as_text(v) for v in operand)
        return lambda value: as_text(value) in targets
    if op == "not_in":
        targets = frozenset(as_text(v) for v in operand)
        return lambda value: as_text(value) not in targets
    if op == "exists":
        wanted = bool(operand)
        return lambda value: (as_text(value) != "") == wanted
    return lambda value: _compare(value, op, operand)


def compile_condition(condition: Condition | None) -> Callable[[Mapping[str, Any]], bool]:
    """``condition`` as a function of a record's CRM fields, built once (the poll tests every record)."""
    if condition is None:
        return lambda fields: True
    if condition.all is not None:
        parts = [compile_condition(c) for c in condition.all]
        return lambda fields: all(part(fields) for part in parts)
    if condition.any is not None:
        parts = [compile_condition(c) for c in condition.any]
        return lambda fields: any(part(fields) for part in parts)
    name = condition.field or ""
    lowered = name.lower()
    tests = [_compile_test(op, operand) for op, operand in condition.operators().items()]

    def test(fields: Mapping[str, Any]) -> bool:
        value = fields[name] if name in fields else next((v for k, v in fields.items() if k.lower() == lowered), None)
        return all(t(value) for t in tests)

    return test


_compiled: dict[int, tuple[Condition, Callable[[Mapping[str, Any]], bool]]] = {}


def evaluate(condition: Condition | None, fields: Mapping[str, Any]) -> bool:
    """Whether ``condition`` holds for a record's CRM fields (``None`` always holds).

    Field names match case-insensitively when the exact name is absent (Salesforce field
    names are case-insensitive).
    """
    if condition is None:
        return True
    entry = _compiled.get(id(condition))
    if entry is None or entry[0] is not condition:
        if len(_compiled) > 4096:
            _compiled.clear()
        entry = _compiled[id(condition)] = (condition, compile_condition(condition))
    return entry[1](fields)


def to_lead(fields: Mapping[str, Any], field_map: Mapping[str, str], record_id: str) -> dict[str, Any]:
    """The raw canonical lead: each mapped CRM field under its canonical name, plus ``id``."""
    lead: dict[str, Any] = {canonical: fields.get(crm_field) for crm_field, canonical in field_map.items()}
    lead["id"] = record_id
    return lead


def acknowledged(settings: Any, fields: Mapping[str, Any]) -> bool:
    """Whether a record's fields say its rep took it up: the ``acknowledged_when`` condition holds and the
    record is not rejected by status (``rejection``): a rep handing a lead back has not acknowledged it."""
    if settings.acknowledged_when is None:
        return False
    if settings.rejection is not None and settings.rejection.reason(fields) is not None:
        return False
    return evaluate(settings.acknowledged_when, fields)
