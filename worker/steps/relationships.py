"""Relationship matching beyond accounts: a lead without an account owner goes to the rep who already
has its company, found by the configured ``relationships`` in order (``worker.config.schema.Relationship``).

``recent_decision``: the rep our own routing last gave a lead from the same company domain, within
the lookback, from the store's domain index (one read per batch). ``crm_recent_record``: the rep who
owns the newest open lead or contact from the same domain created in the CRM within the lookback
(``Connector.recent_by_domain``, one batched lookup per batch, like account owners; records owned by
a queue or by nobody in the config, and the lead itself, do not count). The owner found fills in the
lead's ``account_owner`` (so a rule on ``account_owner``, such as the usual named-account rule,
takes it, and the backup walk applies when the rep is away), and the reason says which
relationship won: ``same-domain lead 00Q5e... routed to sarah (12 days ago)``, ``same-domain lead
00Q5e... owned by sarah (12 days ago)``. Free-mail domains (gmail.com, ...) have no company domain,
so they never match.

The index is noted from the decisions the route step makes (:func:`note`), and only while a
``recent_decision`` relationship or the ``most_recent_contact`` tie-breaker is configured; it keeps
the longest lookback (a year for the tie-breaker). The same read gives the tie-breaker the domain's
last owner (``last_domain_owner``), so the worker settles ties by it as ``simulate`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.base import DomainRecord
from worker.config import RoutingConfig
from worker.domain.normalize import domain_of

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime

DAY = 86_400.0


CONTACT_KEEP = 365 * DAY  # how long the index remembers a domain for the most_recent_contact tie-breaker


def keep_seconds(rt: Runtime | RoutingConfig) -> float:
    """How far back the domain index must reach (0: neither a ``recent_decision`` relationship nor the
    ``most_recent_contact`` tie-breaker is configured, so no index is kept)."""
    config = rt if isinstance(rt, RoutingConfig) else rt.config
    longest = max((r.lookback for r in config.model.relationships if r.match == "recent_decision"), default=0.0)
    return max(longest, CONTACT_KEEP) if config.tie_breaks.uses_contact else longest


def crm_lookback(config: RoutingConfig) -> float:
    """The longest ``crm_recent_record`` lookback (0: the config asks the CRM for none)."""
    return max((r.lookback for r in config.model.relationships if r.match == "crm_recent_record"), default=0.0)


def same_relating(a: RoutingConfig, b: RoutingConfig) -> bool:
    """Whether two configs relate a lead alike: the same relationships, tie-breaker use and reps."""
    return (a.model.relationships == b.model.relationships and a.tie_breaks.uses_contact == b.tie_breaks.uses_contact
            and set(a.reps) == set(b.reps))


def _ago(seconds: float) -> str:
    days = int(seconds // DAY)
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''} ago"
    hours = int(seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''} ago" if hours >= 1 else "less than an hour ago"


def _wanted(config: RoutingConfig, leads: Sequence[dict[str, Any]]) -> dict[int, str]:
    if not keep_seconds(config) and not crm_lookback(config):
        return {}
    contact = config.tie_breaks.uses_contact
    return {i: d for i, lead in enumerate(leads) if contact or not lead.get("account_owner")
            if (d := domain_of(lead.get("email"), lead.get("website")))}


def relate(rt: Runtime, leads: Sequence[dict[str, Any]], at: datetime,
           also: tuple[RoutingConfig, Sequence[dict[str, Any]]] | None = None, crm: str | None = None) -> int:
    """Fill in ``account_owner`` (and the ``relationship`` that found it) of raw leads that have none, and
    ``last_domain_owner`` (for the ``most_recent_contact`` tie-breaker) when the config uses it; one store
    read for all of them, and one CRM lookup (``crm``'s connector) for those a ``crm_recent_record``
    relationship may relate. Returns how many were related.

    ``also`` is another config and its own copies of the leads (shadow mode's candidate, when it relates
    differently): they are related under that config from the same reads (a candidate's ``crm_recent_record``
    sees only the records the live config's lookup read).
    """
    wanted = _wanted(rt.config, leads)
    other = _wanted(also[0], also[1]) if also is not None else {}
    domains = sorted(set(wanted.values()) | set(other.values()))
    if not domains:
        return 0
    found = rt.store.last_owners(domains)
    records: dict[str, list[DomainRecord]] = {}
    lookback = crm_lookback(rt.config)  # the live config's: shadow mode's candidate never costs a CRM call
    if lookback and crm is not None:
        unowned = sorted({d for i, d in wanted.items() if not leads[i].get("account_owner")})
        if unowned:  # one batched lookup per batch, as for account owners
            records = rt.connector(crm).recent_by_domain(unowned, at - timedelta(seconds=lookback))
    if also is not None and other:
        _apply(also[0], also[1], other, found, at, records)
    return _apply(rt.config, leads, wanted, found, at, records)


def _crm_owner(config: RoutingConfig, lead: Mapping[str, Any], records: Sequence[DomainRecord], lookback: float,
               at: datetime) -> tuple[str, str] | None:
    """The newest record within ``lookback`` that a configured rep owns (not the lead itself): (rep, why)."""
    for record in records:  # newest first
        age = (at - record.created_at).total_seconds()
        if age > lookback:
            return None
        rep = config.owner_rep(record.owner_id) if record.owner_id else None
        if rep is None or str(record.id) == str(lead.get("id")):
            continue
        return rep, f"same-domain {record.kind} {record.id} owned by {rep} ({_ago(max(0.0, age))})"
    return None


def _apply(config: RoutingConfig, leads: Sequence[dict[str, Any]], wanted: Mapping[int, str], found: Mapping[str, Any],
           at: datetime, records: Mapping[str, Sequence[DomainRecord]] | None = None) -> int:
    contact = config.tie_breaks.uses_contact
    now = at.timestamp()
    related = 0
    for i, domain in wanted.items():
        lead = leads[i]
        last_seen = found.get(domain)
        if contact and last_seen is not None and str(last_seen.lead_id) != str(lead.get("id")):
            lead["last_domain_owner"] = last_seen.rep_id
        if lead.get("account_owner"):
            continue
        for relationship in config.model.relationships:
            if relationship.match == "crm_recent_record":
                owned = _crm_owner(config, lead, (records or {}).get(domain, ()), relationship.lookback, at)
                if owned is None:
                    continue
                lead["account_owner"], lead["relationship"] = owned
                related += 1
                break
            last = found.get(domain) if relationship.match == "recent_decision" else None
            if last is None or last.rep_id not in config.reps or now - last.at > relationship.lookback:
                continue
            if str(last.lead_id) == str(lead.get("id")):
                continue  # its own earlier epoch is no relationship
            lead["account_owner"] = last.rep_id
            lead["relationship"] = f"same-domain lead {last.lead_id} routed to {last.rep_id} ({_ago(max(0.0, now - last.at))})"
            related += 1
            break
    return related


def note(rt: Runtime, decisions: Sequence[Mapping[str, Any]]) -> None:
    """Note the rep-owned decisions in the domain index (a no-op without a ``recent_decision`` relationship)."""
    keep = keep_seconds(rt)
    if not keep:
        return
    items = []
    for d in decisions:
        domain = (d.get("facts") or {}).get("domain")
        if d.get("owner_kind") == "rep" and domain and d.get("routed_at"):
            items.append((str(domain), str(d["owner"]), str(d.get("lead_id", "")),
                          datetime.fromisoformat(str(d["routed_at"])).timestamp()))
    if items:
        rt.store.note_domains(items, keep, max(at for *_, at in items))
