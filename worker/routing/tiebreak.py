"""Configured tie-breakers: how the engine settles a tie, and which tie-breaker settled it.

A tie is two or more choices the routing rules cannot tell apart: reps with the same load
ratio in a ``least_loaded`` pool, or territories a lead falls in at once when
``territory_overlap: tie_break``. The config lists tie-breakers in order
(``tie_break: [most_recent_contact, seniority]``); each narrows the tied set to its best,
and the first that leaves one choice is the one the decision names. File order always
settles what is left, so every tie has exactly one winner.

Pure: the caller measures each choice (loads, seniority, the domain's last owner) and this
module only compares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

LEAST_LOADED = "least_loaded"
MOST_RECENT_CONTACT = "most_recent_contact"
SENIORITY = "seniority"
FILE_ORDER = "file_order"

TieBreaker = Literal["least_loaded", "most_recent_contact", "seniority", "file_order"]
TIE_BREAKERS: tuple[str, ...] = (LEAST_LOADED, MOST_RECENT_CONTACT, SENIORITY, FILE_ORDER)

T = TypeVar("T")
Measure = Callable[[str, T], float]  # (tie-breaker, choice) -> lower is better


@dataclass(frozen=True, slots=True)
class TieBreaks:
    """The tie-breakers in force, resolved once per config so a decision only looks them up.

    ``pools`` maps each pool to its own list, else the top-level one (None: pool order, and
    the decision names no tie-breaker, as before tie-breakers existed); ``rules`` holds each
    rule's own list (None: the pool's); ``territories`` is the list used between overlapping
    territories, or None when the first match in file order wins. ``overlapping`` and
    ``territorial`` let a lead that cannot be in two territories skip the territory step,
    and a rule that cannot care be tested once for all of a lead's territories.
    """

    pools: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    rules: tuple[tuple[str, ...] | None, ...] = ()
    territories: tuple[str, ...] | None = None
    uses_contact: bool = False
    overlapping: frozenset[str] = frozenset()  # territories that share ground with another
    territorial: tuple[bool, ...] = ()  # per rule: whether it reads territory or segment
    targets: tuple[tuple[object, ...], ...] = ()  # per rule: its target, as a key (rules with equal ones tie)

    def for_pool(self, pool: str, rule: int | None) -> tuple[str, ...] | None:
        """The list for a pick from ``pool`` by rule number ``rule`` (None: a manual target)."""
        own = self.rules[rule] if rule is not None and rule < len(self.rules) else None
        return own if own is not None else self.pools.get(pool)


def _full(keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(keys) if FILE_ORDER in keys else (*keys, FILE_ORDER)


def order(choices: Sequence[T], keys: Sequence[str], measure: Measure[T]) -> list[T]:
    """``choices`` best first under ``keys``, then file order: the order a tie resolves in."""
    full = _full(keys)
    return sorted(choices, key=lambda c: tuple(measure(k, c) for k in full))


def settle(tied: Sequence[T], keys: Sequence[str], measure: Measure[T]) -> tuple[T, str]:
    """The winner among ``tied`` (two or more) and the tie-breaker that picked it.

    Each tie-breaker keeps only the choices best under it; the first to leave one choice
    decided, and later ones are never measured. The winner is ``order(tied, keys, measure)[0]``.
    """
    remaining = list(tied)
    for key in _full(keys):
        values = [measure(key, c) for c in remaining]
        best = min(values)
        remaining = [c for c, v in zip(remaining, values, strict=True) if v == best]
        if len(remaining) == 1:
            return remaining[0], key
    return remaining[0], FILE_ORDER  # reached only if file order measured two choices alike
