"""A/B arms: which arm of a rule's ``split`` a lead falls in.

The arm is a stable hash, never a random draw and never Python's ``hash()`` (salted per
process): BLAKE2b of the rule's name and the lead's key (its company domain, or its id) gives
a point in [0, 100), and the arms' shares, in file order, cut that range. So

* the same lead, and every lead of the same account when the key is ``domain``, lands in the
  same arm on every worker, every retry, every replay and in ``simulate``;
* two rules split independently: the rule's name salts the hash, so being in one rule's
  first arm says nothing about another rule's;
* changing one arm's share moves only the leads at the boundary it shifts.

A lead without the key's value (``key: domain`` but no domain) is split by its lead id, and the
decision says so. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

_SCALE = float(1 << 64)


class ArmSpec(Protocol):
    """What an arm needs to be chosen: its name and its share in percent."""

    name: str
    share: float


def arm_point(rule: str, key: str) -> float:
    """The lead's point in [0, 100) for ``rule``: BLAKE2b-64 of ``rule NUL key``, scaled."""
    digest = hashlib.blake2b(f"{rule}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE * 100.0


def choose_arm(rule: str, arms: Sequence[ArmSpec], key: str) -> int:
    """The index of the arm whose share range holds the lead's point (shares in file order, adding to 100)."""
    point = arm_point(rule, key)
    edge = 0.0
    for index, arm in enumerate(arms):
        edge += arm.share
        if point < edge:
            return index
    return len(arms) - 1  # shares adding to 100 up to rounding: the last arm closes the range


def split_key(key: str, facts: Mapping[str, Any]) -> tuple[str, str]:
    """The value the split hashes and which field it came from: ``key``'s, else the lead id."""
    value = facts.get(key)
    if value not in (None, ""):
        return str(value).strip().lower() if key == "domain" else str(value), key
    return str(facts.get("id", "")), "lead_id"
