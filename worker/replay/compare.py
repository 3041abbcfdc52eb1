"""What a replay found: the leads that change owner, rule or pool, the volumes and fairness on each side,
the fallback, unreadable fields, the SLA exposure, and how faithfully the baseline re-enacts the record.

:class:`Comparison` is fed one lead at a time (:meth:`Comparison.add`) and keeps counters and a few
samples, so its size depends on the configs, not on how many leads are replayed.
:meth:`Comparison.to_dict` is the stable JSON shape (``docs/replay.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from worker.cli.simulate import Summary
from worker.config import RoutingConfig
from worker.config.diff import Change
from worker.domain.stats import share
from worker.replay.history import DERIVED, HistoricalLead
from worker.replay.run import Exposure
from worker.routing.engine import FALLBACK, Decision

CHANGE_KINDS = ("owner", "rule", "pool")
SAMPLES = 5


def pool_of(decision: Decision) -> str | None:
    """The pool a decision drew from (``pool enterprise`` -> ``enterprise``), or None."""
    target = decision.target
    return target[5:] if target.startswith("pool ") else None


def _side(decision: Decision) -> dict[str, Any]:
    return {"owner": decision.owner, "rule": decision.rule, "pool": pool_of(decision), "reason": decision.reason}


def read_fields(config: RoutingConfig) -> set[str]:
    """The lead fields a config's rules and segments read."""
    names: set[str] = set()
    for condition in config.compiled_rules:
        names.update(condition.fields)
    for _, condition in config.compiled_segments:
        names.update(condition.fields)
    return names


class _Exposures:
    __slots__ = ("outside_hours", "over_capacity", "passed_at_capacity")

    def __init__(self) -> None:
        self.outside_hours = self.over_capacity = self.passed_at_capacity = 0

    def add(self, exposure: Exposure) -> None:
        self.outside_hours += exposure.outside_hours
        self.over_capacity += exposure.over_capacity
        self.passed_at_capacity += exposure.passed_at_capacity

    def to_dict(self) -> dict[str, int]:
        return {"outside_hours": self.outside_hours, "over_capacity": self.over_capacity,
                "passed_over_at_capacity": self.passed_at_capacity}


class Comparison:
    """The running comparison of a baseline and a candidate over the same leads."""

    def __init__(self, baseline: RoutingConfig, candidate: RoutingConfig, samples: int = SAMPLES,
                 every_change: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.baseline, self.candidate = baseline, candidate
        self.samples = samples
        self.every_change = every_change  # gets every changed lead, as a sample is shaped (``--changes FILE``)
        self.leads = 0
        self.changed = dict.fromkeys(CHANGE_KINDS, 0)
        self.any_change = 0
        self.owner_only = 0  # owner changed, rule and pool did not: the pool's rotation, loads or availability moved
        self.examples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CHANGE_KINDS}
        self.before, self.after = Summary(baseline), Summary(candidate)
        self.pools_before: Counter[str] = Counter()
        self.pools_after: Counter[str] = Counter()
        self.exposure_before, self.exposure_after = _Exposures(), _Exposures()
        self.unreadable: Counter[str] = Counter()
        self.unreadable_leads = 0
        self.fields_seen: set[str] = set()  # of the fields the candidate reads and the baseline does not (to_dict)
        self._unseen = read_fields(candidate) - read_fields(baseline) - set(DERIVED)  # ... not yet in any lead
        self.recorded_versions: Counter[str] = Counter()
        self.fidelity = {"compared": 0, "owner": 0, "rule": 0}
        self.fidelity_examples: list[dict[str, Any]] = []
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None

    def add(self, lead: HistoricalLead, before: Decision, exposure_before: Exposure, after: Decision,
            exposure_after: Exposure) -> None:
        """Count one lead's two decisions (the signature of :data:`worker.replay.run.Visit`)."""
        self.leads += 1
        if self.first_at is None:
            self.first_at = lead.routed_at
        self.last_at = lead.routed_at
        self.before.add(before)
        self.after.add(after)
        pool_before, pool_after = pool_of(before), pool_of(after)
        self.pools_before[pool_before or "-"] += 1
        self.pools_after[pool_after or "-"] += 1
        self.exposure_before.add(exposure_before)
        self.exposure_after.add(exposure_after)
        if self._unseen:
            fields = lead.lead.fields
            found = [name for name in self._unseen if name in fields]
            if found:
                self.fields_seen.update(found)
                self._unseen.difference_update(found)
        if lead.lead.unreadable:
            self.unreadable_leads += 1
            self.unreadable.update(lead.lead.unreadable)
        if before.owner != after.owner or before.rule != after.rule or pool_before != pool_after:
            self.any_change += 1
            if before.rule == after.rule and pool_before == pool_after:
                self.owner_only += 1
            if self.every_change is not None:
                self.every_change({"lead": lead.label, "routed_at": lead.routed_at.isoformat(), "before": _side(before),
                                   "after": _side(after)})
            for kind, differs in (("owner", before.owner != after.owner), ("rule", before.rule != after.rule),
                                  ("pool", pool_before != pool_after)):
                if differs:
                    self.changed[kind] += 1
                    if len(self.examples[kind]) < self.samples:
                        self.examples[kind].append({"lead": lead.label, "routed_at": lead.routed_at.isoformat(),
                                                    "before": _side(before), "after": _side(after)})
        recorded = lead.recorded
        if recorded is not None:
            if recorded.config_version:
                self.recorded_versions[recorded.config_version] += 1
            self.fidelity["compared"] += 1
            owner_differs = (recorded.owner or None) != before.owner
            rule_differs = (recorded.rule or None) != before.rule
            self.fidelity["owner"] += owner_differs
            self.fidelity["rule"] += rule_differs
            if (owner_differs or rule_differs) and len(self.fidelity_examples) < self.samples:
                self.fidelity_examples.append({
                    "lead": lead.label, "routed_at": lead.routed_at.isoformat(),
                    "recorded": {"owner": recorded.owner, "rule": recorded.rule, "pool": recorded.pool,
                                 "reason": recorded.reason, "config_version": recorded.config_version},
                    "replayed": _side(before),
                })

    def to_dict(self, changes: Sequence[Change], meta: Mapping[str, Any]) -> dict[str, Any]:
        """The stable JSON shape (``docs/replay.md``); ``meta`` fills ``replay`` beside the counts."""
        before, after = self.before.to_dict(), self.after.to_dict()
        owners = sorted(set(before["per_owner"]) | set(after["per_owner"]))
        rules = sorted(set(before["per_rule"]) | set(after["per_rule"]))
        pools = sorted(set(self.pools_before) | set(self.pools_after))
        read_now = read_fields(self.candidate) - read_fields(self.baseline) - set(DERIVED)
        compared = self.fidelity["compared"]
        return {
            "replay": {**meta, "leads": self.leads, "first_routed_at": _iso(self.first_at),
                       "last_routed_at": _iso(self.last_at)},
            "changes": {
                "leads": self.any_change, "share": _round(share(self.any_change, self.leads)),
                **{kind: self.changed[kind] for kind in CHANGE_KINDS}, "owner_only": self.owner_only,
                "samples": {kind: list(self.examples[kind]) for kind in CHANGE_KINDS},
            },
            "config_diff": [c.to_dict() for c in changes],
            "volume": {
                "per_rep": [_delta("owner", o, before["per_owner"], after["per_owner"]) for o in owners],
                "per_pool": [_delta("pool", p, self.pools_before, self.pools_after) for p in pools if p != "-"],
                "per_rule": [_delta("rule", r, before["per_rule"], after["per_rule"]) for r in rules],
            },
            "fairness": {"before": _fairness(before), "after": _fairness(after)},
            "fallback": {"before": _fallback(before, self.leads), "after": _fallback(after, self.leads)},
            "unreadable": {"leads": self.unreadable_leads, "share": _round(share(self.unreadable_leads, self.leads)),
                           "fields": dict(sorted(self.unreadable.items(), key=lambda kv: (-kv[1], kv[0])))},
            "unrecorded_fields": sorted(read_now - self.fields_seen),
            "sla_exposure": {"before": self.exposure_before.to_dict(), "after": self.exposure_after.to_dict()},
            "fidelity": {
                "compared": compared, "owner_differs": self.fidelity["owner"], "rule_differs": self.fidelity["rule"],
                "owner_agreement": _round(share(compared - self.fidelity["owner"], compared)),
                "recorded_config_versions": dict(self.recorded_versions.most_common()),
                "samples": list(self.fidelity_examples),
            },
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _delta(name: str, key: str, before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, Any]:
    was, now = before.get(key, 0), after.get(key, 0)
    return {name: key, "before": was, "after": now, "delta": now - was}


def _fairness(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {name: {"decisions": pool["decisions"], "strategy": pool["strategy"], "gini": pool["gini"],
                   "max_min": pool["max_min"],
                   "members": [{"rep": m["rep"], "assigned": m["assigned"], "eligible": m["eligible"],
                                "expected": m["expected"]} for m in pool["members"]]}
            for name, pool in sorted(summary["pools"].items())}


def _fallback(summary: Mapping[str, Any], leads: int) -> dict[str, Any]:
    n = summary["per_rule"].get(FALLBACK, 0)
    return {"leads": n, "share": _round(share(n, leads))}
