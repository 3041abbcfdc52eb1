"""Shadow mode: every live decision is also made with a candidate config, recorded, and never acted on.

``worker.shadow: candidate.yaml`` in the live config names the candidate (a path relative to the
live config's folder). :func:`load_shadow` loads it when the runtime is built. A candidate that
cannot be read or is invalid is logged as one ``shadow_disabled`` error that lists every
problem as ``file:line: field: problem``. Shadow mode is then off in that process
(``leadroute_shadow_enabled`` is 0) and the worker routes live as usual. Shadow mode must never
stop live routing, so the worker does not refuse to start over it.

After a drain's batch is decided, written to the CRM, handed to the notifications and its failed
writes booked for a retry (:func:`shadow_batch`), each lead the batch decided and settled (written,
or refused for good) is decided again with the candidate, first routings and leads routed again
after a rejection alike (away from the reps who rejected it live):

* against a state of its own: a second store under ``<prefix>:shadow:<candidate version>``
  (:meth:`~worker.store.redis_store.RedisStore.shadow`), with its own loads, rotations,
  idempotent decisions and open leads. The live keys are never written;
* on the lead as the live engine read it (the fetched record, normalised, with the account owner
  the batch looked up; related under the candidate's own relationship settings when they differ,
  from the same read), at the live decision's routing time and with the same availability
  overrides. It costs no CRM call;
* beside the live decision as written (the fallback's, when the CRM refused the decided owner);
* with nothing acted on: no CRM write, no notification, no SLA clock.

Each shadow decision goes to the ledger as a ``shadow`` event tagged with the candidate's
version. The event carries the owner, rule, pool, reps considered and skipped, and the facts
the candidate read, as a decision does, and the live decision beside it (``data.live``). It is
appended to the live outbox after the shadow store records the decision. This is
best-effort, not atomic: a worker killed between the two loses that lead's shadow row. The
event id is ``shadow/<crm>/<object>/<lead>/<epoch>/<version>``, and a retried batch finds the
recorded shadow decision and appends the same event again, so the ledger keeps one copy.

Anything that goes wrong in shadow mode is caught, logged (``shadow_failed``, or
``shadow_rates_unread``) and counted in ``leadroute_shadow_failures_total``; the live batch has
finished by then and never sees it.

**Rates.** The candidate's performance_weighted pools learn from the one table the refresh builds
for the live config, read through a cache of the shadow's own (:attr:`Shadow.rates`), so that its
reads never move the live step's next check. Learning settings that differ from live's are logged
at load (``shadow_rates_differ``).

**Shadow loads.** A shadow claim raises the shadow owner's load, as a live claim does. Live loads
drop at each acknowledgement and are recounted from the CRM by the hourly load reconciliation.
Shadow loads follow that recount (:func:`follow_live_loads`): a lead counts towards its shadow
owner while the live lead is still open and held by a rep, and is released when the live one is
no longer open. Between recounts, shadow loads only grow, so a capacity cap bites a little
earlier in shadow than live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge

from worker.config import ConfigError, RoutingConfig, load_config
from worker.domain.leads import DecisionKey
from worker.domain.normalize import NormalizedLead
from worker.ledger.events import LedgerEvent, loose_time
from worker.routing.engine import Router
from worker.routing.perf import RateTable
from worker.steps import rates as rates_step
from worker.steps.handback import VIA as REJECTION
from worker.steps.ledger import decision_extras, event_id
from worker.store.redis_store import RedisStore

if TYPE_CHECKING:  # the runtime builds the shadow, and imports this module to do it
    from worker.app.runtime import Runtime

log = structlog.get_logger("leadroute.shadow")

OPEN_TTL = 7 * 86_400  # as the live written markers: shadow "written" flags are not used, only held leads

SHADOW_DECISIONS = Counter(
    "leadroute_shadow_decisions_total",
    "Shadow decisions made with the candidate config, by whether the owner agrees with the live decision.",
    ["result"],
)
SHADOW_FAILURES = Counter(
    "leadroute_shadow_failures_total",
    "Leads whose shadow decision failed (caught; the live decision is unaffected), by stage.",
    ["stage"],
)
SHADOW_ENABLED = Gauge(
    "leadroute_shadow_enabled",
    "1 when the worker runs a candidate config in shadow, 0 when none is set or it could not be loaded.",
    multiprocess_mode="max",
)

_DATA = ("reason", "target", "owner_kind", "strategy_state", "considered", "skipped", "unreadable", "routed_at",
         "chain", "tie_breaks", "created_at", "experiment", "via", "excluded")

Work = tuple[DecisionKey, NormalizedLead, Mapping[str, Any]]  # the lead's key, the lead as routed, its live decision


@dataclass(frozen=True)
class Shadow:
    """The candidate config and the separate state it routes against."""

    config: RoutingConfig
    store: RedisStore
    path: Path
    rates: rates_step.RateCache = field(default_factory=rates_step.RateCache, compare=False, repr=False)  # its own

    @property
    def version(self) -> str:
        """The candidate's config version: it tags every shadow event and names the shadow state."""
        return self.config.version_hash


def candidate_path(config: RoutingConfig) -> Path | None:
    """The candidate file ``worker.shadow`` names (relative to the live config's folder), or None."""
    name = config.model.worker.shadow
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else Path(config.file).parent / path


def load_shadow(config: RoutingConfig, store: RedisStore) -> Shadow | None:
    """The shadow set-up the live config asks for; None when it asks for none or the candidate is unusable.

    An unusable candidate (missing, unreadable, invalid) is logged as one ``shadow_disabled`` error
    naming every problem, and shadow mode stays off: the live routing never depends on it.
    """
    path = candidate_path(config)
    if path is None:
        SHADOW_ENABLED.set(0)
        return None
    try:
        candidate = load_config(path)
    except Exception as exc:  # whatever is wrong with the candidate, the live routing goes on without it
        problems = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [f"{type(exc).__name__}: {exc}"]
        log.error("shadow_disabled", candidate=str(path), problems=problems,
                  message=f"shadow mode is off: the candidate config {path} is unusable ({len(problems)} problem(s)); "
                          "live routing is unaffected")
        SHADOW_ENABLED.set(0)
        return None
    shadow = Shadow(candidate, store.shadow(candidate.version_hash), path)
    SHADOW_ENABLED.set(1)
    live_learning, candidate_learning = rates_step.learning(config), rates_step.learning(candidate)
    if candidate_learning is not None and candidate_learning != live_learning:
        log.warning("shadow_rates_differ", candidate=str(path), live=_learning_text(live_learning),
                    shadow=_learning_text(candidate_learning),
                    message="the candidate's performance_weighted pools learn with other settings than live; shadow mode "
                            "routes them with the one table the refresh builds for the live config (docs/shadow.md)")
    log.info("shadow_enabled", candidate=str(path), version=shadow.version, live_version=config.version_hash)
    return shadow


def _learning_text(found: tuple[tuple[str, ...], float] | None) -> str:
    if found is None:
        return "no performance_weighted pool"
    by, window = found
    return f"by {', '.join(by)}, window {window / 86_400:g}d"


def shadow_batch(rt: Runtime, crm: str, work: Sequence[Work], overrides: Mapping[str, str]) -> int:
    """Decide ``work`` again with the candidate, record it in the ledger, and return how many were decided.

    Called by the drain once the batch's live decisions are written. Never raises: a failure is
    logged and counted, and the leads concerned have no shadow row.
    """
    shadow = rt.shadow
    if shadow is None or not work:
        return 0
    started = time.perf_counter()
    try:  # the candidate's performance_weighted pools learn from the live table, read through a cache of its own
        rates = rates_step.current(rt.store, shadow.config, cache=shadow.rates)
    except Exception as exc:  # without the table they route on their priors, as before a first refresh
        SHADOW_FAILURES.labels(stage="rates").inc()
        log.warning("shadow_rates_unread", error=f"{type(exc).__name__}: {exc}"[:300])
        rates = None
    decided = _decide(shadow, work, overrides, rates)
    if not decided:
        return 0
    try:
        events = [shadow_event(key, live, decision, shadow.version, decision_extras(shadow.config, lead))
                  for key, lead, live, decision in decided]
        rt.store.outbox_append(events)
        held = {key.lead_id: d["owner"] for key, _, _, d in decided if d.get("owner_kind") == "rep"}
        queued = [key.lead_id for key, _, _, d in decided if d.get("owner_kind") != "rep"]
        shadow.store.note_written(crm, [], OPEN_TTL, held=held, released=queued)
    except Exception as exc:  # the live batch is done; a shadow failure must never reach it
        SHADOW_FAILURES.labels(stage="record").inc(len(decided))
        log.warning("shadow_failed", stage="record", crm=crm, leads=len(decided), error=f"{type(exc).__name__}: {exc}"[:500])
        return 0
    agree = sum(1 for _, _, live, d in decided if d.get("owner") == live.get("owner"))
    SHADOW_DECISIONS.labels(result="agree").inc(agree)
    SHADOW_DECISIONS.labels(result="differ").inc(len(decided) - agree)
    log.info("shadow_decided", crm=crm, leads=len(decided), agree=agree, version=shadow.version,
             seconds=round(time.perf_counter() - started, 4))
    return len(decided)


def _decide(shadow: Shadow, work: Sequence[Work], overrides: Mapping[str, str], rates: RateTable | None = None
            ) -> list[tuple[DecisionKey, NormalizedLead, Mapping[str, Any], dict[str, Any]]]:
    """The candidate's decisions in the shadow store: the batch in a few round trips, else lead by lead,
    so that one lead the candidate cannot route costs only that lead's shadow row."""
    items = [(key, _compute(shadow.config, key, lead, live, overrides, rates)) for key, lead, live in work]
    try:
        return [(key, lead, live, d.decision)
                for (key, lead, live), d in zip(work, shadow.store.decide_many(items), strict=True)]
    except Exception as exc:  # try each lead alone below
        log.warning("shadow_batch_failed", leads=len(work), error=f"{type(exc).__name__}: {exc}"[:500])
    out = []
    for (key, lead, live), (_, compute) in zip(work, items, strict=True):
        try:
            out.append((key, lead, live, shadow.store.decide_once(key, compute, wait=1.0).decision))
        except Exception as exc:  # this lead gets no shadow row; the live decision stands
            SHADOW_FAILURES.labels(stage="decide").inc()
            log.warning("shadow_failed", stage="decide", lead=str(key), error=f"{type(exc).__name__}: {exc}"[:500])
    return out


def _compute(config: RoutingConfig, key: DecisionKey, lead: NormalizedLead, live: Mapping[str, Any],
             overrides: Mapping[str, str], rates: RateTable | None = None) -> Callable[[Any], dict[str, Any]]:
    """The candidate's engine on the live lead, at the live decision's routing time (deterministic on replay)."""
    at = loose_time(live.get("routed_at"))

    excluded = frozenset(str(rep) for rep in live.get("excluded") or ()) if live.get("via") == REJECTION else frozenset()

    def compute(state: Any) -> dict[str, Any]:
        decision = Router(config, state, rates=rates).route(lead, at=at, overrides=overrides, exclude=excluded)
        for rep in excluded:  # routed again after a rejection, away from the reps who rejected it live
            if decision.skipped.get(rep) == "earlier_owner":
                decision.skipped[rep] = "rejected"
        data = decision.to_dict()
        data["crm"], data["object"], data["epoch"] = key.crm, key.object, key.epoch
        if excluded:
            data["via"], data["excluded"] = REJECTION, sorted(excluded)
        return data

    return compute


def _pool(target: Any) -> str | None:
    text = str(target or "")
    return text.removeprefix("pool ") if text.startswith("pool ") else None


def shadow_event(key: DecisionKey, live: Mapping[str, Any], decision: Mapping[str, Any], version: str,
                 beside: Mapping[str, Any] | None = None) -> LedgerEvent:
    """The ``shadow`` ledger event: the candidate's decision as a decision event has it, and the live one beside it.

    ``at`` is the live decision's routing time (the candidate decided as of then), so a report's
    period holds both or neither; ``beside`` is :func:`~worker.steps.ledger.decision_extras` for the candidate.
    """
    beside = beside or {}
    owner = str(decision.get("owner") or "") or None
    data = {name: decision[name] for name in _DATA if name in decision}
    data["facts"] = {**(beside.get("lead_facts") or {}), **(decision.get("facts") or {})}
    data["live"] = {"owner": live.get("owner"), "rule": live.get("rule"), "pool": _pool(live.get("target")),
                    "reason": live.get("reason"), "config_version": live.get("config_version")}
    data["agree"] = owner == live.get("owner")
    at = loose_time(decision.get("routed_at")) or loose_time(live.get("routed_at")) or datetime.now(UTC)
    lead = key.lead
    # the decisions are JSON-ready already (the engine's to_dict, or read back from Redis), and the outbox encodes
    # the rest: no deep copy through plain() here, which would cost more than deciding
    return LedgerEvent(
        event_id=event_id("shadow", lead, key.epoch, version), kind="shadow", crm=lead.crm, object=lead.object,
        lead_id=lead.lead_id, epoch=key.epoch, at=at,
        config_version=decision.get("config_version") or version,
        owner=owner,
        rule=decision.get("rule"),
        pool=_pool(decision.get("target")),
        arm=decision.get("arm"),  # a candidate's A/B arm, as a decision event has it
        source=beside.get("lead_source"),
        lead_created_at=loose_time(beside.get("created_at")),
        data=data,
    )


def follow_live_loads(rt: Runtime) -> dict[str, int] | None:
    """After the live loads are recounted from the CRM, recount the shadow's from them (see the module's notes).

    A lead the shadow gave a rep counts towards that rep while the live lead is still open and
    held; the others are released. Returns the shadow loads, or None (no shadow, or it failed:
    logged and counted, never raised).
    """
    shadow = rt.shadow
    if shadow is None:
        return None
    try:
        counts: dict[str, int] = {}
        for crm in rt.crms:
            live = rt.store.open_leads(crm)
            held = shadow.store.open_leads(crm)
            shadow.store.release_open(crm, [lead for lead in held if lead not in live])
            for lead, rep in held.items():
                if lead in live:
                    counts[rep] = counts.get(rep, 0) + 1
        shadow.store.set_loads(counts)
    except Exception as exc:  # the live reconciliation is done; the shadow's can wait for the next one
        SHADOW_FAILURES.labels(stage="loads").inc()
        log.warning("shadow_failed", stage="loads", error=f"{type(exc).__name__}: {exc}"[:500])
        return None
    return counts
