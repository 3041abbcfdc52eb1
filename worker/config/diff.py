"""Two routing configs compared, in words: what a reviewer of a routing change needs to read.

Pure: it compares the validated models (:class:`~worker.config.schema.ConfigModel`) and nothing
else, so ``leadroute replay`` and a CI job can print "rule enterprise-emea: employees gte 1000 -> 500"
beside the leads that change. Each :class:`Change` has a ``kind`` a program can group by, the
``subject`` it is about (a rule, pool, rep, territory or segment name) and one sentence.

Rules are matched by name: a name only in the old file is removed, only in the new one added.
Rules in both whose relative order differs are reported as moved, as few as possible (the
rules outside the longest run kept in order), so swapping two rules reads as one move, not as
every rule after them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from worker.config.schema import ConfigModel, RoutingConfig

# Sections of the file that hold named things, compared member by member; the rest as settings.
_NAMED = ("territories", "pools", "segments", "queues")
_SINGULAR = {"territories": "territory", "pools": "pool", "segments": "segment", "queues": "queue"}
_ROUTING_IRRELEVANT = ("connectors", "notifications", "worker")  # no effect on who gets a lead


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``kind`` (``rule.added``, ``pool.changed``, ...), what it is about, and one sentence."""

    kind: str
    subject: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def diff_configs(old: ConfigModel | RoutingConfig, new: ConfigModel | RoutingConfig) -> list[Change]:
    """Every routing-relevant difference from ``old`` to ``new``, rules first, then pools, reps and the rest."""
    a, b = _model(old), _model(new)
    before, after = a.model_dump(mode="json"), b.model_dump(mode="json")
    changes = _rules(before["rules"], after["rules"])
    for section in ("pools", "territories", "segments", "queues"):
        changes += _named(section, before.get(section) or {}, after.get(section) or {})
    changes += _reps(before["reps"], after["reps"])
    if before["fallback"] != after["fallback"]:
        changes.append(Change("fallback.changed", "fallback",
                              f"fallback: {_target(before['fallback'])} -> {_target(after['fallback'])}"))
    changes += _accounts(before.get("accounts") or {}, after.get("accounts") or {})
    skip = {"rules", "reps", "fallback", "accounts", "version", *_NAMED, *_ROUTING_IRRELEVANT}
    for key in sorted(set(before) | set(after)):
        if key in skip or before.get(key) == after.get(key):
            continue
        for path, was, now in _leaves(before.get(key), after.get(key), key):
            changes.append(Change("setting.changed", key, f"{path}: {_show(was)} -> {_show(now)}"))
    return changes


def summary(changes: Sequence[Change]) -> str:
    """``2 rules changed, 1 rule moved, 1 pool changed`` (or ``no routing changes``)."""
    counted: dict[str, int] = {}
    for change in changes:
        counted[change.kind] = counted.get(change.kind, 0) + 1
    if not counted:
        return "no routing changes"
    parts = []
    for kind, n in counted.items():
        thing, _, verb = kind.partition(".")
        parts.append(f"{n} {thing}{'s' if n != 1 and thing not in ('fallback', 'accounts') else ''} {verb}")
    return ", ".join(parts)


def _model(config: ConfigModel | RoutingConfig) -> ConfigModel:
    return config.model if isinstance(config, RoutingConfig) else config


def _target(assign: Mapping[str, Any]) -> str:
    """``pool enterprise (skills: fintech)``, ``rep sarah``, ``queue triage``, ``account owner``."""
    if assign.get("pool"):
        text = f"pool {assign['pool']}"
    elif assign.get("rep"):
        text = f"rep {assign['rep']}"
    elif assign.get("queue"):
        text = f"queue {assign['queue']}"
    else:
        text = "account owner"
    needs = [f"{label}: {', '.join(assign[key])}" for key, label in (("require_skills", "skills"),
                                                                      ("require_languages", "languages")) if assign.get(key)]
    return text + (f" ({'; '.join(needs)})" if needs else "")


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, sort_keys=True)


def _leaves(was: Any, now: Any, path: str) -> list[tuple[str, Any, Any]]:
    """The differing leaves of two JSON values, by dotted path; a list of plain values is one leaf."""
    if isinstance(was, dict) and isinstance(now, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in list(was) + [k for k in now if k not in was]:
            if was.get(key) != now.get(key):
                out += _leaves(was.get(key), now.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [(path, was, now)] if was != now else []


def _phrase(path: str, was: Any, now: Any) -> str:
    """``employees gte 1000 -> 500``; a list of names as what was added and removed."""
    words = path.replace(".", " ")
    if was is None:
        return f"{words} added ({_show(now)})"
    if now is None:
        return f"{words} removed (was {_show(was)})"
    if isinstance(was, list) and isinstance(now, list) and all(isinstance(v, str) for v in [*was, *now]):
        added = [v for v in now if v not in was]
        removed = [v for v in was if v not in now]
        if added or removed:
            bits = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
            return f"{words}: {'; '.join(bits)}"
        return f"{words} reordered: {_show(was)} -> {_show(now)}"
    return f"{words} {_show(was)} -> {_show(now)}"


def _moved(old_order: Sequence[str], new_order: Sequence[str]) -> list[str]:
    """The fewest names to move to turn ``old_order`` into ``new_order`` (both the same names): those
    outside a longest subsequence the two orders share."""
    position = {name: i for i, name in enumerate(new_order)}
    seq = [position[name] for name in old_order]
    tails: list[int] = []  # patience sorting: tails[k] = index in seq ending the best run of k + 1
    parent = [-1] * len(seq)
    for i, value in enumerate(seq):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if seq[tails[mid]] < value:
                lo = mid + 1
            else:
                hi = mid
        parent[i] = tails[lo - 1] if lo else -1
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    kept: set[int] = set()
    i = tails[-1] if tails else -1
    while i >= 0:
        kept.add(i)
        i = parent[i]
    moved = [old_order[i] for i in range(len(seq)) if i not in kept]
    return sorted(moved, key=position.__getitem__)


def _rules(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Change]:
    old = {r["name"]: (i, r) for i, r in enumerate(before)}
    new = {r["name"]: (i, r) for i, r in enumerate(after)}
    changes = [Change("rule.removed", name, f"rule {name} removed (was #{i + 1}: {_when(r)} -> {_target(r['assign'])})")
               for name, (i, r) in old.items() if name not in new]
    changes += [Change("rule.added", name, f"rule {name} added at #{i + 1}: {_when(r)} -> {_target(r['assign'])}")
                for name, (i, r) in new.items() if name not in old]
    common_old = [r["name"] for r in before if r["name"] in new]
    common_new = [r["name"] for r in after if r["name"] in old]
    for name in _moved(common_old, common_new):
        j = common_new.index(name)
        where = f"now before {common_new[j + 1]}" if j + 1 < len(common_new) else f"now after {common_new[j - 1]}"
        changes.append(Change("rule.moved", name, f"rule {name} moved from #{old[name][0] + 1} to #{new[name][0] + 1} "
                                                  f"({where})"))
    for name, (_, rule) in new.items():
        if name not in old or old[name][1] == rule:
            continue
        was = old[name][1]
        bits = []
        if was["assign"] != rule["assign"]:
            bits.append(f"target {_target(was['assign'])} -> {_target(rule['assign'])}")
        bits += [_phrase(p, x, y) for p, x, y in _leaves(was.get("when") or {}, rule.get("when") or {}, "")]
        for key in sorted((set(was) | set(rule)) - {"name", "when", "assign"}):
            bits += [_phrase(p, x, y) for p, x, y in _leaves(was.get(key), rule.get(key), key)]
        changes.append(Change("rule.changed", name, f"rule {name}: {'; '.join(bits)}"))
    return changes


def _when(rule: Mapping[str, Any]) -> str:
    when = rule.get("when") or {}
    return _show(when) if when else "every lead"


def _named(section: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    thing = _SINGULAR[section]
    changes = [Change(f"{thing}.removed", name, f"{thing} {name} removed") for name in before if name not in after]
    changes += [Change(f"{thing}.added", name, f"{thing} {name} added: {_show(after[name])}")
                for name in after if name not in before]
    for name in after:
        if name in before and before[name] != after[name]:
            bits = [_phrase(p, x, y) for p, x, y in _leaves(before[name], after[name], "")]
            changes.append(Change(f"{thing}.changed", name, f"{thing} {name}: {'; '.join(bits)}"))
    return changes


def _reps(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Change]:
    old = {r["id"]: r for r in before}
    new = {r["id"]: r for r in after}
    changes = [Change("rep.removed", rep, f"rep {rep} removed") for rep in old if rep not in new]
    changes += [Change("rep.added", rep, f"rep {rep} added") for rep in new if rep not in old]
    for rep, now in new.items():
        was = old.get(rep)
        if was is None or was == now:
            continue
        bits = [_phrase(p, x, y) for p, x, y in _leaves(was, now, "")]
        changes.append(Change("rep.changed", rep, f"rep {rep}: {'; '.join(bits)}"))
    return changes


def _accounts(before: Mapping[str, str], after: Mapping[str, str]) -> list[Change]:
    moved = [f"{d} {before.get(d, '(none)')} -> {after.get(d, '(none)')}"
             for d in sorted(set(before) | set(after)) if before.get(d) != after.get(d)]
    if not moved:
        return []
    shown = "; ".join(moved[:10]) + (f"; and {len(moved) - 10} more" if len(moved) > 10 else "")
    return [Change("accounts.changed", "accounts", f"{len(moved)} account owner(s) changed: {shown}")]
