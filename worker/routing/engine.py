"""The routing engine: lead + team + rules -> one owner, with a full explanation.

Pure: no CRM, no Celery, no Redis. The only side effect goes through ``RoutingState``,
which makes the final pick atomic (advance a rotation, bump a load).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.config import Assign, Rep, RoutingConfig
from worker.domain.normalize import NormalizedLead, normalize_lead
from worker.routing.state import Candidate, RoutingState

FALLBACK = "fallback"

# Why a rep was passed over. Order matters: the first that applies is recorded.
INACTIVE, OOO, MISSING_SKILL, MISSING_LANGUAGE, AT_CAPACITY, OUTSIDE_HOURS = (
    "inactive", "ooo", "missing_skill", "missing_language", "at_capacity", "outside_hours",
)


@dataclass(slots=True)
class Decision:
    """Everything needed to explain, audit and replay one routing decision."""

    lead_id: str
    owner: str
    owner_kind: str
    rule: str
    target: str
    config_version: str
    routed_at: str
    reason: str
    considered: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    strategy_state: str = ""
    unreadable: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def owner_rep(self) -> str | None:
        """The rep id, or None when the lead went to a queue."""
        return self.owner if self.owner_kind == "rep" else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form for logs, the decision log and ``simulate --format jsonl``."""
        return {
            "lead_id": self.lead_id, "owner": self.owner, "owner_kind": self.owner_kind, "rule": self.rule,
            "target": self.target, "config_version": self.config_version, "routed_at": self.routed_at,
            "reason": self.reason, "considered": list(self.considered), "skipped": dict(self.skipped),
            "strategy_state": self.strategy_state, "unreadable": list(self.unreadable), "facts": dict(self.facts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision read back from the decision log."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _local(zone: Any, at: datetime) -> datetime:
    return at.astimezone(zone)


def absence(rep: Rep, config: RoutingConfig, at: datetime, overrides: Mapping[str, str]) -> str | None:
    """Why a rep cannot take any lead right now (inactive, out of office), or None."""
    forced = overrides.get(rep.id)
    if forced:
        return forced
    if not rep.active:
        return INACTIVE
    if rep.out_of_office:
        today = _local(config.zones[rep.id], at).date()
        if any(w.start <= today <= w.end for w in rep.out_of_office):
            return OOO
    return None


def in_hours(rep: Rep, config: RoutingConfig, at: datetime) -> bool:
    """Whether ``at`` falls in the rep's working hours, in the rep's own time zone."""
    hours = rep.hours or config.model.hours
    if hours is None:
        return True
    local = _local(config.zones[rep.id], at)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    return day in hours.days and hours.start <= local.time() < hours.end


def _fmt_count(n: float) -> str:
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"


def _fact_phrase(name: str, facts: Mapping[str, Any]) -> str | None:
    value = facts.get(name)
    if name == "territory":
        country = facts.get("country")
        if not country:
            return None
        return f"{country}/{facts['state']}" if facts.get("state") else str(country)
    if value is None or value == "":
        return None
    if name == "employees":
        return f"{_fmt_count(value)} employees"
    if name == "annual_revenue":
        return f"revenue {_fmt_count(value)}"
    if name == "score":
        return f"score {_fmt_count(value)}"
    if name == "account_owner":
        return f"account owner {value}"
    if name in ("segment", "industry", "lead_source", "product_interest", "domain", "country", "state"):
        return str(value)
    return f"{name} {value}"


def derive_facts(lead: NormalizedLead, config: RoutingConfig) -> dict[str, Any]:
    """Canonical fields plus what the rules can ask about: territory, segment, account owner."""
    facts = dict(lead.fields)
    country = facts.get("country")
    if country:
        state = facts.get("state")
        postcode = facts.get("postcode", "")
        for name, countries, states, postcodes in config.territory_order:
            if country not in countries:
                continue
            if states and state not in states:
                continue
            if postcodes and not any(str(postcode).replace(" ", "").startswith(p) for p in postcodes):
                continue
            facts["territory"] = name
            break
    for name, condition in config.compiled_segments:
        if condition.test(facts):
            facts["segment"] = name
            break
    owner = facts.get("account_owner")
    if owner:
        rep = config.owner_rep(str(owner))
        facts["account_owner"] = rep or str(owner)
    elif facts.get("domain") and facts["domain"] in config.model.accounts:
        facts["account_owner"] = config.model.accounts[facts["domain"]]
    return facts


class Router:
    """Routes leads for one configuration against one state."""

    def __init__(self, config: RoutingConfig, state: RoutingState) -> None:
        self.config = config
        self.state = state

    def route(
        self,
        lead: Mapping[str, Any] | NormalizedLead,
        at: datetime | None = None,
        overrides: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Decision:
        """Decide the owner of one lead; never raises for bad lead data, never leaves it unrouted.

        ``lead`` is a raw lead, or one normalised already (a caller deciding it more than once).
        ``at`` is the routing time for leads without ``created_at``; ``overrides`` forces a
        rep unavailable (rep id -> reason, e.g. an OOO set from the CLI); ``exclude`` lists
        reps that must not get this lead (earlier owners, on reassignment).
        """
        normalized, ctx = self._start(lead, at, overrides, exclude)
        facts = ctx.facts
        lead_id = str(facts.get("id", ""))
        for rule, condition in zip(self.config.rules, self.config.compiled_rules, strict=True):
            if not condition.test(facts):
                continue
            phrase = ", ".join(p for p in (_fact_phrase(f, facts) for f in condition.fields) if p)
            head = f"{rule.name}: {phrase}" if phrase else rule.name
            outcome = ctx.assign(rule.assign)
            if outcome is not None:
                return ctx.decision(lead_id, rule.name, head, outcome, normalized)
            return ctx.decision(lead_id, FALLBACK, head, ctx.fallback(ctx.failure), normalized)
        return ctx.decision(lead_id, FALLBACK, "no rule matched", ctx.fallback(None), normalized)

    def route_to(
        self,
        lead: Mapping[str, Any],
        target: Assign,
        label: str,
        at: datetime | None = None,
        overrides: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Decision:
        """Send a lead to one given target (a manual re-route, an SLA reassignment), with the same
        availability checks and strategies as a rule, and the fallback when nobody can take it."""
        normalized, ctx = self._start(lead, at, overrides, exclude)
        lead_id = str(ctx.facts.get("id", ""))
        outcome = ctx.assign(target)
        if outcome is None:
            return ctx.decision(lead_id, FALLBACK, label, ctx.fallback(ctx.failure), normalized)
        return ctx.decision(lead_id, label, label, outcome, normalized)

    def _start(
        self,
        lead: Mapping[str, Any] | NormalizedLead,
        at: datetime | None,
        overrides: Mapping[str, str] | None,
        exclude: frozenset[str],
    ) -> tuple[NormalizedLead, _Context]:
        normalized = lead if isinstance(lead, NormalizedLead) else normalize_lead(lead)
        facts = derive_facts(normalized, self.config)
        created = facts.get("created_at")
        when = created if isinstance(created, datetime) else (at or datetime.now(UTC))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return normalized, _Context(self, facts, when, overrides or {}, exclude)


@dataclass(slots=True)
class _Outcome:
    owner: str
    kind: str
    target: str
    detail: str


class _Context:
    """Per-decision scratch: what was considered, what was skipped and why."""

    def __init__(
        self, router: Router, facts: dict[str, Any], at: datetime,
        overrides: Mapping[str, str], exclude: frozenset[str],
    ) -> None:
        self.config = router.config
        self.state = router.state
        self.facts = facts
        self.at = at
        self.overrides = overrides
        self.exclude = exclude
        self.considered: list[str] = []
        self.skipped: dict[str, str] = {}
        self.failure: str | None = None

    def skip(self, rep_id: str, reason: str) -> None:
        if rep_id not in self.considered:
            self.considered.append(rep_id)
        self.skipped.setdefault(rep_id, reason)

    def assign(self, target: Assign) -> _Outcome | None:
        kind = target.kind
        if kind == "queue":
            return _Outcome(f"queue:{target.queue}", "queue", f"queue {target.queue}", "")
        if kind == "pool":
            return self.pool(target)
        if kind == "rep":
            return self.relationship(str(target.rep), f"rep {target.rep}")
        owner = self.facts.get("account_owner")
        if not owner:
            self.failure = "no account owner"
            return None
        if owner not in self.config.reps:
            self.failure = f"account owner {owner} is not a configured rep"
            return None
        return self.relationship(str(owner), "account owner")

    def relationship(self, rep_id: str, label: str) -> _Outcome | None:
        """A named rep or account owner: only absence skips them; then their backup chain."""
        tried: list[str] = []
        current: str | None = rep_id
        while current and current not in tried:
            tried.append(current)
            rep = self.config.reps[current]
            self.considered.append(current)
            if current in self.exclude:
                self.skip(current, "earlier_owner")
            else:
                why = absence(rep, self.config, self.at, self.overrides)
                if why is None:
                    load = self.state.assign(current)
                    via = f" (backup for {rep_id}: {', '.join(f'{r} {self.skipped[r]}' for r in tried[:-1])})" \
                        if current != rep_id else ""
                    cap = f"/{rep.capacity}" if rep.capacity else ""
                    return _Outcome(current, "rep", label, f"{current} {load}{cap}{via}")
                self.skip(current, why)
            current = rep.backup
        who = label if label.endswith(rep_id) else f"{label} {rep_id}"
        self.failure = f"{who} unavailable ({', '.join(f'{r} {self.skipped[r]}' for r in tried)})"
        return None

    def pool(self, target: Assign) -> _Outcome | None:
        name = str(target.pool)
        pool = self.config.pools[name]
        loads = self.state.loads(pool.members)
        in_hours_now: list[Candidate] = []
        after_hours: list[Candidate] = []
        for rep_id in pool.members:
            rep = self.config.reps[rep_id]
            self.considered.append(rep_id)
            why = "earlier_owner" if rep_id in self.exclude else absence(rep, self.config, self.at, self.overrides)
            if why is None and target.require_skills and not set(target.require_skills) <= set(rep.skills):
                why = MISSING_SKILL
            if why is None and target.require_languages and not set(target.require_languages) & set(rep.languages):
                why = MISSING_LANGUAGE
            if why is None and rep.capacity is not None and loads.get(rep_id, 0) >= rep.capacity:
                why = AT_CAPACITY
            if why is not None:
                self.skipped[rep_id] = why
                continue
            candidate = Candidate(rep_id, rep.weight, rep.capacity)
            if in_hours(rep, self.config, self.at):
                in_hours_now.append(candidate)
            else:
                after_hours.append(candidate)
        for group, note in ((in_hours_now, ""), (after_hours, "; all eligible reps outside hours")):
            if not group:
                continue
            pick = self.state.pick(name, pool.strategy, pool.members, group)
            for rep_id in pick.at_capacity:
                self.skipped[rep_id] = AT_CAPACITY
            if pick.rep_id is not None:
                if note:
                    for c in after_hours:
                        if c.rep_id != pick.rep_id:
                            self.skipped.setdefault(c.rep_id, OUTSIDE_HOURS)
                else:
                    for c in after_hours:
                        self.skipped[c.rep_id] = OUTSIDE_HOURS
                return _Outcome(pick.rep_id, "rep", f"pool {name}", pick.detail + note)
        self.failure = f"pool {name} had nobody available" + (
            f" ({', '.join(f'{r} {w}' for r, w in self.skipped.items())})" if self.skipped else ""
        )
        return None

    def fallback(self, why: str | None) -> _Outcome:
        fb = self.config.fallback
        prefix = f"{why} -> " if why else ""
        if fb.queue:
            return _Outcome(f"queue:{fb.queue}", "queue", f"fallback queue {fb.queue}", why or "")
        outcome = self.relationship(str(fb.rep), "fallback rep")
        if outcome is not None:
            outcome.target = f"fallback rep {fb.rep}"
            outcome.detail = prefix + outcome.detail
            return outcome
        # The fallback must never fail: the triage rep takes it even when away.
        load = self.state.assign(str(fb.rep))
        return _Outcome(str(fb.rep), "rep", f"fallback rep {fb.rep}", f"{prefix}{fb.rep} {load} (away, no backup)")

    def decision(
        self, lead_id: str, rule: str, head: str, outcome: _Outcome, normalized: NormalizedLead
    ) -> Decision:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        reason = f"{head} -> {outcome.target}{detail}"
        if normalized.unreadable:
            reason += f" [unreadable: {', '.join(normalized.unreadable)}]"
        considered = list(dict.fromkeys(self.considered))
        facts = {k: self.facts[k] for k in ("territory", "segment", "domain", "account_owner") if k in self.facts}
        return Decision(
            lead_id=lead_id,
            owner=outcome.owner,
            owner_kind=outcome.kind,
            rule=rule,
            target=outcome.target,
            config_version=self.config.version_hash,
            routed_at=self.at.isoformat(),
            reason=reason,
            considered=considered,
            skipped=dict(self.skipped),
            strategy_state=outcome.detail,
            unreadable=list(normalized.unreadable),
            facts=facts,
        )
