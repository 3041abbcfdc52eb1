"""Record identifiers in the shapes each CRM really uses.

Salesforce ids are 15 case-sensitive characters plus a 3-character case-safe suffix; clients and
connectors compare and store the 18-character form, so the sandbox always emits that form and
accepts either.
"""

from __future__ import annotations

import itertools
import re
import uuid

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SF_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Task": "00T",
    "Lead": "00Q",
    "Group": "00G",
    "Organization": "00D",
}
PREFIX_TO_TYPE = {v: k for k, v in KEY_PREFIXES.items()}


def sf_suffix(id15: str) -> str:
    """The case-safe checksum suffix Salesforce appends to a 15-character id."""
    out = []
    for chunk in range(3):
        flags = 0
        for bit in range(5):
            ch = id15[chunk * 5 + bit]
            if "A" <= ch <= "Z":
                flags |= 1 << bit
        out.append(_SUFFIX_ALPHABET[flags])
    return "".join(out)


def to_sf18(value: str) -> str:
    """Normalise a 15- or 18-character id to 18 characters (other strings pass through)."""
    if len(value) == 15 and value.isalnum():
        return value + sf_suffix(value)
    return value


def is_sf_id(value: object) -> bool:
    return isinstance(value, str) and bool(SF_ID_RE.match(value))


def sf_type_of(value: str) -> str | None:
    return PREFIX_TO_TYPE.get(value[:3])


def _base62(n: int, width: int) -> str:
    chars = []
    while n:
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "".join(reversed(chars)).rjust(width, "0")


class SfIdFactory:
    """Generates fresh 18-character ids per sObject type (pod '5e', a base-62 counter)."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def new(self, sobject: str, *, start: int = 900_000) -> str:
        prefix = KEY_PREFIXES.get(sobject, "a0X")
        counter = self._counters.setdefault(prefix, itertools.count(start))
        id15 = prefix + "5e" + _base62(next(counter), 10)
        return id15 + sf_suffix(id15)


def correlation_id() -> str:
    return str(uuid.uuid4())
