"""CRM fields -> canonical lead fields, and the intake/acknowledgement conditions evaluated locally.

Conditions are pushed down into SOQL or HubSpot search filters where possible, but the CRM
query is only ever a *superset* (some tests cannot be expressed, and the two CRMs disagree
about how missing values compare); the answer that counts is this module's, evaluated on
the record we read. Its semantics are documented on :class:`connectors.settings.Condition`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from connectors.settings import Condition

__all__ = ["as_text", "evaluate", "to_lead"]


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


def _test(value: Any, op: str, operand: Any) -> bool:
    text = as_text(value)
    if op == "eq":
        return text == as_text(operand)
    if op == "ne":
        return text != as_text(operand)
    if op == "in":
        return text in {as_text(v) for v in operand}
    if op == "not_in":
        return text not in {as_text(v) for v in operand}
    if op == "exists":
        return (text != "") == bool(operand)
    return _compare(value, op, operand)


def evaluate(condition: Condition | None, fields: Mapping[str, Any]) -> bool:
    """Whether ``condition`` holds for a record's CRM fields (``None`` always holds).

    Field names match case-insensitively when the exact name is absent (Salesforce field
    names are case-insensitive).
    """
    if condition is None:
        return True
    if condition.all is not None:
        return all(evaluate(c, fields) for c in condition.all)
    if condition.any is not None:
        return any(evaluate(c, fields) for c in condition.any)
    name = condition.field or ""
    if name in fields:
        value = fields[name]
    else:
        lowered = name.lower()
        value = next((v for k, v in fields.items() if k.lower() == lowered), None)
    return all(_test(value, op, operand) for op, operand in condition.operators().items())


def to_lead(fields: Mapping[str, Any], field_map: Mapping[str, str], record_id: str) -> dict[str, Any]:
    """The raw canonical lead: each mapped CRM field under its canonical name, plus ``id``."""
    lead: dict[str, Any] = {canonical: fields.get(crm_field) for crm_field, canonical in field_map.items()}
    lead["id"] = record_id
    return lead
