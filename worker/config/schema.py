"""The routing configuration: one YAML file, validated on load with errors that point at a line.

``load_config(path)`` returns a ``RoutingConfig`` whose rules are compiled and ready for the
engine, or raises ``ConfigError`` listing *every* problem found as
``file:line: field.path: what is wrong (did you mean ...?)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from connectors.settings import ConnectorsConfig, Seconds, parse_seconds
from worker.config.yamlpos import PathKey, YamlSyntaxError, line_for, load_with_lines, read_text
from worker.domain.names import suggest
from worker.domain.normalize import country_code, region_code
from worker.notify.settings import NotificationsConfig
from worker.routing.caps import CapTable, limits
from worker.routing.conditions import CANONICAL_FIELDS, ConditionError, compile_when
from worker.routing.state import Candidate, Strategy
from worker.routing.tiebreak import FILE_ORDER, MOST_RECENT_CONTACT, TieBreaker, TieBreaks
from worker.sla.settings import compile_sla

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Hours(_Model):
    """Working hours in the rep's own time zone; ``end`` is exclusive."""

    days: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(9, 0)
    end: time = time(17, 0)
    # minutes before ``end`` in which a rep gets a new lead only when no one eligible in the pool has longer
    wind_down: int = Field(default=0, ge=0, le=240)

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(d).strip().lower()[:3] for d in value)
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> Hours:
        if self.start >= self.end:
            raise ValueError(
                f"start {self.start:%H:%M} must be before end {self.end:%H:%M} "
                "(hours that cross midnight are not supported; split the shift)"
            )
        return self


class OutOfOffice(_Model):
    """Inclusive dates in the rep's time zone."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> OutOfOffice:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class Caps(_Model):
    """At most this many leads per calendar day, ISO week or month, in the rep's time zone (``worker.routing.caps``)."""

    daily: int | None = Field(default=None, ge=1)
    weekly: int | None = Field(default=None, ge=1)
    monthly: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _some(self) -> Caps:
        if self.daily is None and self.weekly is None and self.monthly is None:
            raise ValueError("give at least one of daily, weekly or monthly, e.g. 'caps: {daily: 20}'")
        return self


class Rep(_Model):
    id: str = Field(min_length=1)
    name: str = ""
    email: str = ""
    crm_ids: dict[str, str] = Field(default_factory=dict)
    slack_id: str | None = None
    timezone: str | None = None
    hours: Hours | None = None
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    capacity: int | None = Field(default=None, ge=0)
    weight: int = Field(default=1, ge=1)
    backup: str | None = None
    manager: str | None = None
    out_of_office: tuple[OutOfOffice, ...] = ()
    active: bool = True
    country: str | None = None  # ISO code for public holidays on the SLA clock; else from the time zone
    seniority: int | None = None  # the ``seniority`` tie-breaker: the highest wins; none ranks last
    caps: Caps | None = None  # leads per day/week/month from anywhere, beside the open-load capacity

    @field_validator("skills", "languages", mode="before")
    @classmethod
    def _lower_tags(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower() for v in value)
        return value

    @field_validator("crm_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


class Territory(_Model):
    """Countries (any spelling, normalised to ISO-2), optional states/provinces and postcode prefixes."""

    countries: tuple[str, ...] = Field(min_length=1)
    states: tuple[str, ...] = ()
    postcodes: tuple[str, ...] = ()

    @field_validator("countries", "states", "postcodes", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip() for v in value)
        return value


def _tie_break_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value  # `tie_break: seniority` is a list of one


def _unique_tie_breakers(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is not None:
        if not value:
            raise ValueError("list at least one tie-breaker, e.g. [least_loaded, file_order], or leave tie_break out")
        twice = sorted({k for k in value if value.count(k) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice; each tie-breaker is used once, in order")
    return value


TieBreakList = tuple[TieBreaker, ...] | None


PERF_FIELDS = ("segment", "industry", "source", "territory", "product_interest", "country")


class Performance(_Model):
    """A ``performance_weighted`` pool's learning and fairness (docs/outcome-routing.md)."""

    by: tuple[Literal["segment", "industry", "source", "territory", "product_interest", "country"], ...] = ("segment",)
    window: float = 90 * 86_400.0  # learn from leads routed within this long (e.g. "90d")
    prior_strength: float = Field(default=20.0, gt=0)  # the pool's rate counts as this many leads
    tilt: float = Field(default=2.0, ge=0, le=10)  # weight = configured weight x (rate / pool rate) ** tilt
    warmup: int = Field(default=20, ge=0)  # weighted round robin for a member until they have this many leads
    floor: float = Field(default=0.0, ge=0, lt=1)  # each eligible member gets at least this share ...
    cap: float = Field(default=1.0, gt=0, le=1)  # ... and at most this share ...
    fairness_window: int = Field(default=100, ge=2, le=10_000)  # ... of every this many leads of the pool

    @field_validator("by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _seconds(value)


class PoolLoad(_Model):
    """What a ``least_loaded`` pool counts as a rep's load (``worker.routing.pipeline``): open leads and the
    rep's open opportunities (HubSpot: deals) in the CRM, each times its weight."""

    leads: float = Field(default=1.0, ge=0)
    opportunities: float = Field(default=0.0, ge=0)

    @field_validator("leads")
    @classmethod
    def _leads_count(cls, value: float) -> float:
        # Opportunity counts change only at a pipeline refresh: with leads weighing nothing the load compared
        # stays put between refreshes, and the least loaded rep takes every lead until then.
        if value == 0:
            raise ValueError("a weight of 0 would send every lead to the same rep until the next pipeline refresh "
                             "(leads routed add nothing to the load compared, and opportunity counts change only "
                             "when re-read); give leads a small positive weight, e.g. "
                             "'load: {leads: 0.1, opportunities: 1}'")
        return value


class Pool(_Model):
    members: tuple[str, ...]
    strategy: Strategy = Strategy.ROUND_ROBIN
    performance: Performance | None = None  # performance_weighted only: what it learns, floor and cap
    tie_break: TieBreakList = None
    caps: Caps | None = None  # per member: leads per day/week/month from this pool
    load: PoolLoad | None = None  # least_loaded only: weights of open leads and CRM opportunities
    # first routing waits for a member in hours with room: while the pool is closed, and up to this many
    # seconds after it opens (or after the lead came, if later); then the next to start, then the fallback
    hold: Seconds | None = None

    _list = field_validator("tie_break", mode="before")(_tie_break_list)
    _unique = field_validator("tie_break")(_unique_tie_breakers)

    @model_validator(mode="after")
    def _load_needs_least_loaded(self) -> Pool:
        if self.load is not None and self.strategy is not Strategy.LEAST_LOADED:
            raise ValueError(f"load weights apply to least_loaded pools only; this pool is {self.strategy.value} "
                             "(set 'strategy: least_loaded' or remove 'load')")
        if self.hold is not None and not 0 < self.hold <= 86400:
            raise ValueError(f"hold must be more than 0 and at most a day (24h), not {self.hold:g} s")
        return self


class Assign(_Model):
    """Exactly one target: a named rep, a pool, a queue, or the account owner."""

    rep: str | None = None
    pool: str | None = None
    queue: str | None = None
    account_owner: bool | None = None
    require_skills: tuple[str, ...] = ()
    require_languages: tuple[str, ...] = ()

    @field_validator("require_skills", "require_languages", mode="before")
    @classmethod
    def _lower_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower() for v in value)
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Assign:
        targets = [k for k in ("rep", "pool", "queue") if getattr(self, k)]
        if self.account_owner:
            targets.append("account_owner")
        if len(targets) != 1:
            raise ValueError(
                "give exactly one target: rep, pool, queue or account_owner: true"
                + (f" (got {', '.join(targets)})" if targets else "")
            )
        if (self.require_skills or self.require_languages) and not self.pool:
            raise ValueError("require_skills/require_languages only apply to a pool target")
        return self

    @property
    def kind(self) -> str:
        for k in ("rep", "pool", "queue"):
            if getattr(self, k):
                return k
        return "account_owner"


class Fallback(_Model):
    """Where a lead goes when no rule matches or a target cannot take it: a queue or a triage rep."""

    queue: str | None = None
    rep: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Fallback:
        if bool(self.queue) == bool(self.rep):
            raise ValueError("give exactly one of queue or rep")
        return self


def _seconds(value: Any) -> Any:
    return parse_seconds(value)


class WorkerSettings(_Model):
    """How often beat polls, drains, reconciles and moves the ledger outbox; durations like ``15s``, ``5m``, ``1h``."""

    poll_every: float = 15.0
    drain_every: float = 5.0
    poll_backlog_deferral: float = 60.0
    reconcile_orphans_every: float = 300.0
    orphan_age: float = 120.0
    reconcile_loads_every: float = 3600.0
    ledger_flush_every: float = 5.0  # move the ledger outbox to SQL (and after every routed batch)
    outcomes_every: float = 3600.0  # read back what became of routed leads (converted, won, lost)
    outcomes_lookback: float = 180 * 86_400.0  # ... for leads routed within this long (e.g. "180d")
    owned_poll_every: float = 60.0  # poll owned records for hand-off triggers and rejections by status (when configured)
    ledger_retention: float | None = None  # delete ledger events older than this (e.g. "730d"); unset: keep all
    pipeline_every: float = 300.0  # count open opportunities per rep in the CRM (pools with load: opportunities)
    pipeline_max_age: float = 1800.0  # ... and call counts older than this stale (said in the decision)
    # a candidate routing config run in shadow beside the live one (docs/shadow.md): a path, relative to this
    # file's folder; not part of the config version, so turning it on or off changes no live decision
    shadow: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: ValidationInfo) -> Any:
        return value if info.field_name == "shadow" else _seconds(value)

    @field_validator("*")
    @classmethod
    def _positive(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "shadow":
            if value is not None and not value:
                raise ValueError("must name a candidate config file, e.g. routing.candidate.yaml")
            return value
        if value <= 0:
            raise ValueError("must be a positive duration, e.g. 15s")
        return value


class Arm(_Model):
    """One arm of an A/B split: its name, its share of the rule's leads in percent, its target."""

    name: str = Field(min_length=1)
    share: float = Field(gt=0, le=100)
    assign: Assign


class Split(_Model):
    """A rule's leads divided between arms by a stable hash of ``key`` (see ``worker.routing.split``)."""

    key: Literal["domain", "lead_id"] = "domain"
    arms: tuple[Arm, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _shares_add_up(self) -> Split:
        total = sum(a.share for a in self.arms)
        if abs(total - 100) > 1e-9:
            parts = ", ".join(f"{a.name} {a.share:g}" for a in self.arms)
            raise ValueError(f"arm shares add up to {total:g}, not 100 ({parts})")
        return self


class Relationship(_Model):
    """A relationship that gives a lead without an account owner one (``worker.steps.relationships``).

    ``recent_decision``: the rep our own routing last gave a lead from the same company domain,
    within ``lookback`` (e.g. ``90d``). ``crm_recent_record``: the rep who owns the newest open lead
    or contact from the same domain created in the CRM within ``lookback``. Free-mail domains never match.
    """

    match: Literal["recent_decision", "crm_recent_record"]
    lookback: float

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("lookback")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration, e.g. 90d")
        return value


class Rejections(_Model):
    """What a lead a rep hands back (``worker.steps.reject``) does to the rep's turn."""

    credit_back: bool = False  # give the turn back: the rotation serves the rep next, and the lead leaves their caps


class Rule(_Model):
    name: str = Field(min_length=1)
    when: dict[str, Any] = Field(default_factory=dict)
    assign: Assign  # with a split: the first arm's, so code that reads a rule's target still has one
    tie_break: TieBreakList = None  # overrides the pool's for this rule
    split: Split | None = None  # A/B arms, each with its own target, instead of assign

    _list = field_validator("tie_break", mode="before")(_tie_break_list)
    _unique = field_validator("tie_break")(_unique_tie_breakers)

    @model_validator(mode="before")
    @classmethod
    def _assign_or_split(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("split") is not None:
            if "assign" in data:
                raise ValueError("give either assign or split (each arm has its own assign), not both")
            arms = data["split"].get("arms") if isinstance(data["split"], dict) else None
            first = arms[0] if isinstance(arms, list) and arms and isinstance(arms[0], dict) else None
            if first is not None and "assign" in first:
                data = {**data, "assign": first["assign"]}
        return data


class Trigger(_Model):
    """A hand-off (``worker.steps.handoffs``): route an already-owned lead again when ``when`` becomes true.

    The lead goes by the trigger's own ``rules`` or by the top-level rules named in ``use_rules``
    (one of the two); it fires once per crossing of ``when`` from false to true, and only the first
    time unless ``refire`` lets a lead that dropped below and crossed again fire again.
    """

    name: str = Field(min_length=1)
    when: dict[str, Any] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()
    use_rules: tuple[str, ...] = ()
    refire: bool = False

    @model_validator(mode="after")
    def _rules_or_names(self) -> Trigger:
        if bool(self.rules) == bool(self.use_rules):
            raise ValueError("give the trigger's own rules or use_rules (names of top-level rules), "
                             + ("not both" if self.rules else "one of them"))
        return self


class ConfigModel(_Model):
    version: Literal[1] = 1
    timezone: str = "UTC"
    hours: Hours | None = None
    fields: tuple[str, ...] = ()
    reps: tuple[Rep, ...] = Field(min_length=1)
    territories: dict[str, Territory] = Field(default_factory=dict)
    pools: dict[str, Pool] = Field(default_factory=dict)
    queues: dict[str, dict[str, str]] = Field(default_factory=dict)
    accounts: dict[str, str] = Field(default_factory=dict)
    segments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    connectors: ConnectorsConfig = ConnectorsConfig()
    worker: WorkerSettings = WorkerSettings()
    notifications: NotificationsConfig = NotificationsConfig()
    sla: dict[str, Any] | None = None  # validated by worker.sla.settings.compile_sla, with locations
    rules: tuple[Rule, ...] = ()
    fallback: Fallback
    tie_break: TieBreakList = None  # default for pools; used between territories
    territory_overlap: Literal["first_match", "tie_break"] = "first_match"
    rejections: Rejections = Rejections()
    relationships: tuple[Relationship, ...] = ()  # in order: the first that finds an owner gives it
    triggers: tuple[Trigger, ...] = ()  # hand-offs of owned leads (worker.steps.handoffs)

    _list = field_validator("tie_break", mode="before")(_tie_break_list)
    _unique = field_validator("tie_break")(_unique_tie_breakers)

    @field_validator("queues", mode="before")
    @classmethod
    def _queue_ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): ({str(a): str(b) for a, b in v.items()} if isinstance(v, dict) else v) for k, v in value.items()}
        return value


@dataclass(frozen=True, slots=True)
class Problem:
    """One error or warning, located in the file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any, part: str | int | None = None) -> Any:
    """Drop Optional/Union wrappers, preferring a member that has field ``part``."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel) and part in arg.model_fields:
                return arg
        return _unwrap(args[0], part) if args else annotation
    return annotation


def _model_for(path: PathKey) -> type[BaseModel] | None:
    """The model that a location in the file is validated against, for key suggestions."""
    annotation: Any = ConfigModel
    for part in path:
        annotation = _unwrap(annotation, part)
        origin = get_origin(annotation)
        if origin in (tuple, list):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _pydantic_problems(exc: ValidationError, file: str, lines: dict[PathKey, int]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc: PathKey = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = _model_for(loc[:-1])
            valid = list(model.model_fields) if model else []
            msg = f"unknown key '{loc[-1]}'{suggest(str(loc[-1]), valid)}"
        elif err["type"] == "missing" and loc == ("fallback",):
            msg = "a fallback is required so no lead is ever unrouted, e.g. 'fallback: {queue: triage}'"
        elif err["type"] == "missing":
            msg = f"required key '{loc[-1]}' is missing"
        elif err["type"] == "literal_error" and "expected" in err.get("ctx", {}):
            got = err.get("input")
            valid = re.findall(r"'([^']*)'", str(err["ctx"]["expected"]))
            msg = f"'{got}' is not one of {err['ctx']['expected']}{suggest(str(got), valid)}"
        elif err["type"] == "enum":
            msg = f"'{err.get('input')}' is not a strategy; use one of {err['ctx']['expected']}"
        problems.append(Problem(file, line_for(lines, loc), _dotted(loc), msg))
    return problems


@dataclass(frozen=True)
class RoutingConfig:
    """A validated configuration, with rules compiled for the engine."""

    model: ConfigModel
    file: str
    version_hash: str
    reps: dict[str, Rep]
    zones: dict[str, ZoneInfo]
    territory_order: tuple[tuple[str, frozenset[str], frozenset[str], tuple[str, ...]], ...]
    compiled_rules: tuple[Any, ...]
    compiled_segments: tuple[tuple[str, Any], ...]
    crm_owner_index: dict[str, str]
    warnings: tuple[Problem, ...]
    sla: Any = None
    tie_breaks: TieBreaks = field(default_factory=TieBreaks)
    rules_by_territory: dict[str | None, tuple[int, ...]] | None = None  # None: test every rule
    candidates: dict[str, Candidate] = field(default_factory=dict)  # each rep as a pool pick sees them, made once
    caps: CapTable = field(default_factory=CapTable)  # caps per period, by rep and by pool
    text: str | None = field(default=None, compare=False, repr=False)  # the YAML as loaded (the dashboard keeps it)
    triggers: dict[str, CompiledTrigger] = field(default_factory=dict, compare=False, repr=False)  # by name, file order

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.model.rules

    @property
    def pools(self) -> dict[str, Pool]:
        return self.model.pools

    @property
    def fallback(self) -> Fallback:
        return self.model.fallback

    def owner_rep(self, value: str) -> str | None:
        """A rep id from either a rep id or any CRM user id of a rep."""
        return value if value in self.reps else self.crm_owner_index.get(value)


@dataclass(frozen=True)
class CompiledTrigger:
    """A trigger ready for the worker: its condition, and a view of the config whose rules are the trigger's
    (same reps, pools, state and version), so the engine routes by them unchanged."""

    name: str
    condition: Any  # worker.routing.conditions.Condition
    refire: bool
    config: RoutingConfig


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _cross_check(model: ConfigModel, file: str, lines: dict[PathKey, int]) -> list[Problem]:
    problems: list[Problem] = []

    def err(path: PathKey, message: str) -> None:
        problems.append(Problem(file, line_for(lines, path), _dotted(path), message))

    rep_ids = [r.id for r in model.reps]
    seen: set[str] = set()
    for i, rep in enumerate(model.reps):
        if rep.id in seen:
            err(("reps", i, "id"), f"duplicate rep id '{rep.id}'")
        seen.add(rep.id)
    known = set(rep_ids)
    zones = None
    if _zone(model.timezone) is None:
        zones = zones or available_timezones()
        err(("timezone",), f"unknown time zone '{model.timezone}'{suggest(model.timezone, zones)}")
    for i, rep in enumerate(model.reps):
        if rep.timezone and _zone(rep.timezone) is None:
            zones = zones or available_timezones()
            err(("reps", i, "timezone"), f"unknown time zone '{rep.timezone}'{suggest(rep.timezone, zones)}")
        for key in ("backup", "manager"):
            ref = getattr(rep, key)
            if ref and ref not in known:
                err(("reps", i, key), f"unknown rep '{ref}'{suggest(ref, known)}")
        if rep.backup == rep.id:
            err(("reps", i, "backup"), f"rep '{rep.id}' cannot be their own backup")
    for name, terr in model.territories.items():
        for j, c in enumerate(terr.countries):
            if country_code(c) is None:
                err(("territories", name, "countries", j), f"unknown country '{c}'")
        for j, s in enumerate(terr.states):
            if not any(region_code(s, country_code(c)) for c in terr.countries):
                err(("territories", name, "states", j), f"unknown state or province '{s}'")
    for name, pool in model.pools.items():
        if not pool.members:
            err(("pools", name, "members"), f"pool '{name}' has no members")
        dup: set[str] = set()
        for j, m in enumerate(pool.members):
            if m not in known:
                err(("pools", name, "members", j), f"unknown rep '{m}'{suggest(m, known)}")
            if m in dup:
                err(("pools", name, "members", j), f"rep '{m}' is listed twice")
            dup.add(m)
    for domain, owner in model.accounts.items():
        if owner not in known:
            err(("accounts", domain), f"unknown rep '{owner}'{suggest(owner, known)}")
    names: set[str] = set()
    for i, rule in enumerate(model.rules):
        if rule.name in names:
            err(("rules", i, "name"), f"duplicate rule name '{rule.name}'")
        names.add(rule.name)
        if rule.split is not None:
            problems.extend(_check_split(rule.split, ("rules", i, "split"), model, known, file, lines))
        else:
            problems.extend(_check_target(rule.assign, ("rules", i, "assign"), model, known, file, lines))
    problems.extend(_check_target(model.fallback, ("fallback",), model, known, file, lines))
    problems.extend(_check_performance(model, file, lines))
    problems.extend(_check_triggers(model, known, names, file, lines))
    return problems


def _check_triggers(model: ConfigModel, known: set[str], rule_names: set[str], file: str, lines: dict) -> list[Problem]:
    """Trigger names are unique, ``use_rules`` name top-level rules, own rules have unique names and known targets."""
    out: list[Problem] = []

    def err(path: PathKey, message: str) -> None:
        out.append(Problem(file, line_for(lines, path), _dotted(path), message))

    seen: set[str] = set()
    for i, trigger in enumerate(model.triggers):
        if trigger.name in seen:
            err(("triggers", i, "name"), f"duplicate trigger name '{trigger.name}'")
        seen.add(trigger.name)
        for j, name in enumerate(trigger.use_rules):
            if name not in rule_names:
                hint = suggest(name, rule_names) or ("" if rule_names else " (there are no top-level rules)")
                err(("triggers", i, "use_rules", j), f"unknown rule '{name}'{hint}")
            elif name in trigger.use_rules[:j]:
                err(("triggers", i, "use_rules", j), f"rule '{name}' is listed twice")
        own: set[str] = set()
        for j, rule in enumerate(trigger.rules):
            where: PathKey = ("triggers", i, "rules", j)
            if rule.name in own:
                err((*where, "name"), f"duplicate rule name '{rule.name}' in trigger '{trigger.name}'")
            own.add(rule.name)
            if rule.split is not None:
                out.extend(_check_split(rule.split, (*where, "split"), model, known, file, lines))
            else:
                out.extend(_check_target(rule.assign, (*where, "assign"), model, known, file, lines))
    return out


def _check_split(split: Split, path: PathKey, model: ConfigModel, known: set[str], file: str, lines: dict) -> list[Problem]:
    """Each arm's target exists, and no two arms share a name (the ledger tells arms apart by name)."""
    out = []
    seen: set[str] = set()
    for j, arm in enumerate(split.arms):
        where = (*path, "arms", j)
        if arm.name in seen:
            out.append(Problem(file, line_for(lines, (*where, "name")), _dotted((*where, "name")),
                               f"arm '{arm.name}' is named twice; each arm needs its own name"))
        seen.add(arm.name)
        out.extend(_check_target(arm.assign, (*where, "assign"), model, known, file, lines))
    return out


def _check_performance(model: ConfigModel, file: str, lines: dict) -> list[Problem]:
    """A performance_weighted pool's floor and cap must be possible for its members and its window."""
    out = []
    learners = [(name, p.performance or Performance()) for name, p in model.pools.items()
                if p.strategy is Strategy.PERFORMANCE_WEIGHTED]
    for name, perf in learners[1:]:  # one rate table for all: see worker/steps/rates.py
        first, settings = learners[0]
        if (tuple(perf.by), perf.window) != (tuple(settings.by), settings.window):
            path = ("pools", name, "performance")
            out.append(Problem(file, line_for(lines, path), _dotted(path), (
                f"performance_weighted pools learn from one rate table: give '{name}' the same by and window as "
                f"'{first}' ({', '.join(settings.by)}; {settings.window / 86_400:g} days)")))
    for name, pool in model.pools.items():
        perf, path = pool.performance, ("pools", name, "performance")
        if perf is not None and pool.strategy is not Strategy.PERFORMANCE_WEIGHTED:
            out.append(Problem(file, line_for(lines, path), _dotted(path),
                               f"only a performance_weighted pool learns; pool '{name}' is {pool.strategy.value}"))
        if perf is None or pool.strategy is not Strategy.PERFORMANCE_WEIGHTED or not pool.members:
            continue
        n = len(pool.members)

        def err(key: str, message: str, path: PathKey = path) -> None:
            out.append(Problem(file, line_for(lines, (*path, key)), _dotted((*path, key)), message))

        if perf.floor * n > 1 + 1e-9:
            err("floor", f"a floor of {perf.floor:g} for each of {n} members adds up to more than every lead "
                         f"(at most {1 / n:.3g})")
        if perf.cap * n < 1 - 1e-9:
            err("cap", f"a cap of {perf.cap:g} for each of {n} members leaves leads nobody may take (at least {1 / n:.3g})")
        if perf.floor > perf.cap:
            err("floor", f"floor {perf.floor:g} is above cap {perf.cap:g}")
        if perf.floor > 0 and perf.floor * perf.fairness_window < 1:
            err("floor", f"{perf.floor:g} of a {perf.fairness_window}-lead window is less than one lead; "
                         "widen fairness_window")
    return out


def _check_target(
    target: Assign | Fallback, path: PathKey, model: ConfigModel, known: set[str], file: str, lines: dict
) -> list[Problem]:
    out = []
    checks = [
        ("rep", known, "rep"),
        ("pool", set(model.pools), "pool"),
        ("queue", set(model.queues), "queue"),
    ]
    for key, valid, label in checks:
        ref = getattr(target, key, None)
        if ref and ref not in valid:
            hint = suggest(ref, valid) or ("" if valid else f" (no {label}s are defined; add a '{key}s:' section)")
            out.append(Problem(file, line_for(lines, (*path, key)), _dotted((*path, key)), f"unknown {label} '{ref}'{hint}"))
    return out


COVERAGE_HORIZON = timedelta(days=30)  # how far ahead `check` looks for a coverage cycle that is all away


def backup_cycles(reps: Sequence[Rep]) -> list[list[str]]:
    """Every cycle of backups (``ava -> ben -> ava``), each once, starting from its first rep in file order.

    Each rep has at most one backup, so cycles never share a rep.
    """
    backup = {r.id: r.backup for r in reps if r.backup and r.backup != r.id}
    order = {r.id: i for i, r in enumerate(reps)}
    cycles: list[list[str]] = []
    done: set[str] = set()
    for rep in reps:
        path: list[str] = []
        cur: str | None = rep.id
        while cur is not None and cur in order and cur not in done and cur not in path:
            path.append(cur)
            cur = backup.get(cur)
        if cur is not None and cur in path:
            cycle = path[path.index(cur):]
            start = min(range(len(cycle)), key=lambda k: order[cycle[k]])
            cycles.append(cycle[start:] + cycle[:start])
        done.update(path)
    return cycles


def _spans(days: Sequence[date]) -> str:
    """Consecutive dates as ``2026-12-24 to 2026-12-26, 2027-01-02``."""
    out: list[str] = []
    start = prev = days[0]
    for d in [*days[1:], None]:
        if d is not None and d == prev + timedelta(days=1):
            prev = d
            continue
        out.append(str(start) if start == prev else f"{start} to {prev}")
        if d is not None:
            start = prev = d
    return ", ".join(out)


def _coverage_warnings(model: ConfigModel, today: date, file: str, lines: dict[PathKey, int]) -> list[Problem]:
    """A backup cycle whose reps are all away on the same day leaves their leads to the fallback."""
    index = {r.id: i for i, r in enumerate(model.reps)}
    horizon = [today + timedelta(days=k) for k in range(COVERAGE_HORIZON.days)]
    out = []
    for cycle in backup_cycles(model.reps):
        reps = [model.reps[index[r]] for r in cycle]

        def away(rep: Rep, day: date) -> bool:
            return not rep.active or any(w.start <= day <= w.end for w in rep.out_of_office)

        days = [d for d in horizon if all(away(rep, d) for rep in reps)]
        if days:
            path = ("reps", index[cycle[0]], "backup")
            out.append(Problem(file, line_for(lines, path), _dotted(path), (
                f"backup cycle {' -> '.join([*cycle, cycle[0]])}: all of them are away on {_spans(days)} "
                f"(within {COVERAGE_HORIZON.days} days of {today}); their named accounts and direct leads "
                "go to the fallback then")))
    return out


def _place(territory: tuple[str, frozenset[str], frozenset[str], tuple[str, ...]]) -> str:
    _, countries, states, postcodes = territory
    text = ", ".join(sorted(countries))
    if states:
        text += ": " + ", ".join(sorted(states))
    if postcodes:
        text += (", " if states else ": ") + "postcodes " + ", ".join(f"{p}*" for p in sorted(postcodes))
    return text


def _overlap(
    a: tuple[str, frozenset[str], frozenset[str], tuple[str, ...]],
    b: tuple[str, frozenset[str], frozenset[str], tuple[str, ...]],
) -> tuple[str, frozenset[str], frozenset[str], tuple[str, ...]] | None:
    """Where two territories overlap (as a territory), or None when no lead can be in both."""
    countries = a[1] & b[1]
    if not countries:
        return None
    states = a[2] & b[2] if a[2] and b[2] else a[2] or b[2]
    if a[2] and b[2] and not states:
        return None
    if a[3] and b[3]:
        postcodes = tuple(sorted({p if p.startswith(q) else q for p in a[3] for q in b[3]
                                  if p.startswith(q) or q.startswith(p)}))
        if not postcodes:
            return None
    else:
        postcodes = a[3] or b[3]
    return "", countries, states, postcodes


def _covers(a: tuple[str, frozenset[str], frozenset[str], tuple[str, ...]],
            b: tuple[str, frozenset[str], frozenset[str], tuple[str, ...]]) -> bool:
    """Whether every lead in territory ``b`` is also in ``a``."""
    return (b[1] <= a[1] and (not a[2] or (bool(b[2]) and b[2] <= a[2]))
            and (not a[3] or (bool(b[3]) and all(any(p.startswith(q) for q in a[3]) for p in b[3]))))


def _territory_warnings(
    model: ConfigModel, order: Sequence[tuple[str, frozenset[str], frozenset[str], tuple[str, ...]]],
    file: str, lines: dict[PathKey, int],
) -> list[Problem]:
    """Name every pair of overlapping territories and what decides a lead that is in both."""
    out = []
    by = "first_match" if model.territory_overlap == "first_match" else f"tie_break [{', '.join(_territory_keys(model))}]"
    for j, later in enumerate(order):
        for earlier in order[:j]:
            common = _overlap(earlier, later)
            if common is None:
                continue
            if model.territory_overlap == "first_match" and _covers(earlier, later):
                message = (f"territory '{later[0]}' can never match: every lead in it is also in '{earlier[0]}' "
                           f"above it, which wins (territory_overlap: first_match)")
            elif model.territory_overlap == "first_match":
                message = (f"territories '{earlier[0]}' and '{later[0]}' overlap ({_place(common)}): a lead in both "
                           f"is in '{earlier[0]}', the first in file order (territory_overlap: first_match)")
            else:
                message = (f"territories '{earlier[0]}' and '{later[0]}' overlap ({_place(common)}): a lead in both "
                           f"goes by the rules of one of them, chosen by {by}")
            path = ("territories", later[0])
            out.append(Problem(file, line_for(lines, path), _dotted(path), message))
    return out


def _territory_keys(model: ConfigModel) -> tuple[str, ...]:
    return model.tie_break or (FILE_ORDER,)


def _tie_break_warnings(model: ConfigModel, file: str, lines: dict[PathKey, int]) -> list[Problem]:
    """A tie-break list that can never apply, or one that depends on history the worker does not keep."""
    out = []

    def warn(path: PathKey, message: str) -> None:
        out.append(Problem(file, line_for(lines, path), _dotted(path), message))

    def rotation(strategy: Strategy) -> str:
        return (f"{strategy.value} takes turns and never ties" if strategy is Strategy.ROUND_ROBIN
                else f"{strategy.value} settles its own ties in member order, as part of its rotation")

    scope = "tie_break applies to least_loaded pools and, with territory_overlap: tie_break, to overlapping territories"
    for name, pool in model.pools.items():
        if pool.tie_break and pool.strategy is not Strategy.LEAST_LOADED:
            warn(("pools", name, "tie_break"), f"has no effect: {rotation(pool.strategy)} ({scope})")
    for i, rule in enumerate(model.rules):
        if not rule.tie_break:
            continue
        pool = model.pools.get(rule.assign.pool or "")
        if pool is None:
            warn(("rules", i, "tie_break"), f"has no effect: rule '{rule.name}' does not assign to a pool ({scope})")
        elif pool.strategy is not Strategy.LEAST_LOADED:
            warn(("rules", i, "tie_break"), f"has no effect: pool '{rule.assign.pool}' is {pool.strategy.value}: "
                                            f"{rotation(pool.strategy)} ({scope})")
    if model.tie_break and model.territory_overlap == "first_match" and not any(
            p.strategy is Strategy.LEAST_LOADED and p.tie_break is None for p in model.pools.values()):
        warn(("tie_break",), f"has no effect: no least_loaded pool uses it and territory_overlap is first_match ({scope})")
    if model.territory_overlap == "tie_break" and not model.tie_break:
        warn(("territory_overlap",), "tie_break without a top-level tie_break list settles overlapping territories "
                                     "by file order, as first_match does; add e.g. 'tie_break: [most_recent_contact, "
                                     "least_loaded]'")
    lists: list[tuple[PathKey, tuple[str, ...] | None]] = [(("tie_break",), model.tie_break)]
    lists += [(("pools", n, "tie_break"), p.tie_break) for n, p in model.pools.items()]
    lists += [(("rules", i, "tie_break"), r.tie_break) for i, r in enumerate(model.rules)]
    if any(k and "seniority" in k for _, k in lists) and not any(r.seniority is not None for r in model.reps):
        warn(("reps",), "no rep has a seniority, so the seniority tie-breaker never decides anything")
    return out


def _cap_warnings(model: ConfigModel, file: str, lines: dict[PathKey, int]) -> list[Problem]:
    """Caps that can never be reached (a longer period's is lower), and a capped fallback rep (who takes leads past them)."""
    out = []
    blocks: list[tuple[PathKey, Caps]] = [(("reps", i, "caps"), r.caps) for i, r in enumerate(model.reps) if r.caps]
    blocks += [(("pools", n, "caps"), p.caps) for n, p in model.pools.items() if p.caps]
    for path, caps in blocks:
        given = [(k, v) for k, v in (("daily", caps.daily), ("weekly", caps.weekly), ("monthly", caps.monthly)) if v is not None]
        for j, (short, n) in enumerate(given):
            lower = next(((k, v) for k, v in given[j + 1:] if v < n), None)
            if lower is not None:
                out.append(Problem(file, line_for(lines, (*path, short)), _dotted((*path, short)),
                                   f"the {short} cap {n} is never reached: the {lower[0]} cap {lower[1]} is lower"))
    fb = model.fallback.rep
    for i, rep in enumerate(model.reps):
        if fb and rep.id == fb and rep.caps:
            out.append(Problem(file, line_for(lines, ("reps", i, "caps")), _dotted(("reps", i, "caps")),
                               f"rep '{rep.id}' is the fallback: when nobody else can take a lead they take it past these caps"))
    return out


def _tie_breaks(
    model: ConfigModel, compiled: Sequence[Any], order: Sequence[tuple[str, frozenset[str], frozenset[str], tuple[str, ...]]]
) -> TieBreaks:
    """The tie-breakers each pool, rule and the territory step use, resolved once."""
    default = model.tie_break
    pools = {n: (p.tie_break or default) if p.strategy is Strategy.LEAST_LOADED else None
             for n, p in model.pools.items()}
    rules = tuple(r.tie_break for r in model.rules)
    territories = _territory_keys(model) if model.territory_overlap == "tie_break" else None
    used = [*pools.values(), *rules, territories]
    overlapping = frozenset(t[0] for j, t in enumerate(order) for other in order[:j] + order[j + 1:]
                            if _overlap(t, other) is not None)
    return TieBreaks(pools=pools, rules=rules, territories=territories,
                     uses_contact=any(k is not None and MOST_RECENT_CONTACT in k for k in used),
                     overlapping=overlapping,
                     territorial=tuple("territory" in c.fields or "segment" in c.fields for c in compiled),
                     targets=tuple((r.assign.kind, r.assign.rep, r.assign.pool, r.assign.queue, r.assign.require_skills,
                                    r.assign.require_languages) for r in model.rules))


def _rules_by_territory(model: ConfigModel) -> dict[str | None, tuple[int, ...]]:
    """Per territory (None: a lead in none), the rules a lead there can match, in order: all
    but those whose ``territory:`` names only other territories. The engine tests just these."""
    def fold(name: str) -> str:
        return name.strip().casefold()  # as the rule's equality test compares them

    required = [_required_territories(r.when) for r in model.rules]
    by: dict[str | None, tuple[int, ...]] = {
        name: tuple(i for i, only in enumerate(required) if only is None or fold(name) in only)
        for name in model.territories
    }
    by[None] = tuple(i for i, only in enumerate(required) if only is None)
    return by


def _required_territories(when: dict[str, Any]) -> frozenset[str] | None:
    """The territories a rule's top-level ``territory:`` allows (a name or a list), folded, else None (any)."""
    value = when.get("territory")
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return frozenset(v.strip().casefold() for v in value)
    return None


def _version_hash(model: ConfigModel) -> str:
    # worker.shadow names a candidate to compare with, it changes no live decision: not part of the version
    canonical = json.dumps(model.model_dump(mode="json", exclude={"worker": {"shadow"}}), sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def parse_config(text: str, file: str = "<config>", *, today: date | None = None) -> RoutingConfig:
    """Validate YAML text; raise ConfigError with every problem, located.

    ``today`` (default: the current UTC date) is where the warning about a coverage cycle
    whose reps are all away starts looking; tests pass a fixed date.
    """
    try:
        data, lines = load_with_lines(text, file)
    except YamlSyntaxError as exc:
        raise ConfigError([Problem(file, exc.line, "", exc.message)]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", "expected a mapping with reps, pools, rules and fallback")])
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, file, lines)) from None
    problems = _cross_check(model, file, lines)
    compiled = []
    territory_names = set(model.territories)
    extra_fields = set(model.fields)
    segments = []
    for name, spec in model.segments.items():
        try:
            segments.append((name, compile_when(spec, territory_names, extra_fields)))
        except ConditionError as exc:
            path = ("segments", name, *exc.path)
            problems.append(Problem(file, line_for(lines, path), _dotted(path), exc.message))
    for i, rule in enumerate(model.rules):
        try:
            compiled.append(compile_when(rule.when, territory_names, extra_fields, model.segments))
        except ConditionError as exc:
            path = ("rules", i, "when", *exc.path)
            problems.append(Problem(file, line_for(lines, path), _dotted(path), exc.message))
    trigger_parts: list[tuple[Trigger, Any, list[Any]]] = []
    for i, trigger in enumerate(model.triggers):
        parts: list[Any] = []
        try:
            condition = compile_when(trigger.when, territory_names, extra_fields, model.segments)
        except ConditionError as exc:
            path = ("triggers", i, "when", *exc.path)
            problems.append(Problem(file, line_for(lines, path), _dotted(path), exc.message))
            condition = None
        for name in [f for f in UNTRIGGERABLE if condition is not None and f in condition.fields]:
            path = ("triggers", i, "when", name)
            problems.append(Problem(file, line_for(lines, path), _dotted(path),
                                    f"a trigger cannot read '{name}': the owned poll sees the lead as the CRM holds "
                                    "it, without the account-owner lookup or relationships routing fills in"))
        if condition is not None and "segment" in condition.fields:
            for seg_name, seg in segments:
                if any(f in seg.fields for f in UNTRIGGERABLE):
                    path = ("triggers", i, "when", "segment")
                    problems.append(Problem(file, line_for(lines, path), _dotted(path), (
                        f"a trigger cannot read 'segment': segment '{seg_name}' reads 'account_owner', which the "
                        "owned poll does not have (routing fills it in)")))
                    break
        for j, rule in enumerate(trigger.rules):
            try:
                parts.append(compile_when(rule.when, territory_names, extra_fields, model.segments))
            except ConditionError as exc:
                path = ("triggers", i, "rules", j, "when", *exc.path)
                problems.append(Problem(file, line_for(lines, path), _dotted(path), exc.message))
        trigger_parts.append((trigger, condition, parts))
    if problems:
        raise ConfigError(problems)
    warnings = []
    by_triggers = {n for t in model.triggers for n in t.use_rules}  # they match where a trigger routes by them
    for i, rule in enumerate(model.rules[:-1]):
        if not rule.when:
            for j in range(i + 1, len(model.rules)):
                later = model.rules[j]
                if later.name in by_triggers:
                    continue
                warnings.append(
                    Problem(
                        file,
                        line_for(lines, ("rules", j)),
                        f"rules[{j}]",
                        f"rule '{later.name}' can never match: rule '{rule.name}' "
                        "above it has no conditions and matches every lead",
                    )
                )
            break
    for crm in model.connectors.enabled():
        for i, rep in enumerate(model.reps):
            if rep.active and crm not in rep.crm_ids:
                warnings.append(Problem(file, line_for(lines, ("reps", i, "crm_ids")), f"reps[{i}].crm_ids",
                                        f"rep '{rep.id}' has no {crm} id: {crm} leads routed to them go to the fallback"))
        for name, ids in model.queues.items():
            if crm not in ids:
                warnings.append(Problem(file, line_for(lines, ("queues", name)), f"queues.{name}",
                                        f"queue '{name}' has no {crm} id: it cannot own {crm} leads"))
    territory_order = []
    for name, terr in model.territories.items():
        countries = frozenset(c for c in (country_code(x) for x in terr.countries) if c)
        states = frozenset(s for s in (region_code(x, c) for x in terr.states for c in countries) if s)
        postcodes = tuple(p.upper().replace(" ", "") for p in terr.postcodes)
        territory_order.append((name, countries, states, postcodes))
    warnings += _coverage_warnings(model, today or datetime.now(UTC).date(), file, lines)
    warnings += _territory_warnings(model, territory_order, file, lines)
    warnings += _tie_break_warnings(model, file, lines)
    warnings += _cap_warnings(model, file, lines)
    for i, relationship in enumerate(model.relationships):
        if relationship.match == "crm_recent_record" and not model.connectors.enabled():
            warnings.append(Problem(file, line_for(lines, ("relationships", i)), f"relationships[{i}]",
                                    "crm_recent_record has no effect: no CRM connector is enabled to look records up in"))
    for name, pool in model.pools.items():
        if pool.load is not None and pool.load.opportunities > 0 and not model.connectors.enabled():
            warnings.append(Problem(file, line_for(lines, ("pools", name, "load")), f"pools.{name}.load",
                                    "weighs opportunities but no CRM connector is enabled: every rep counts 0"))
    if model.relationships and not any(r.assign.account_owner or "account_owner" in c.fields
                                       for r, c in zip(model.rules, compiled, strict=True)):
        warnings.append(Problem(file, line_for(lines, ("relationships",)), "relationships",
                                "has no effect: no rule reads account_owner or assigns to it, and a relationship "
                                "only fills in the account owner"))
    warnings += _trigger_warnings(model, trigger_parts, file, lines)
    default_zone = ZoneInfo(model.timezone)
    zones = {r.id: ZoneInfo(r.timezone) if r.timezone else default_zone for r in model.reps}
    config = RoutingConfig(
        model=model,
        file=file,
        version_hash=_version_hash(model),
        text=text,
        reps={r.id: r for r in model.reps},
        zones=zones,
        territory_order=tuple(territory_order),
        compiled_rules=tuple(compiled),
        compiled_segments=tuple(segments),
        crm_owner_index={cid: r.id for r in model.reps for cid in r.crm_ids.values()},
        warnings=tuple(warnings),
        tie_breaks=_tie_breaks(model, compiled, territory_order),
        rules_by_territory=_rules_by_territory(model),
        candidates={r.id: Candidate(r.id, r.weight, r.capacity) for r in model.reps},
        caps=CapTable(reps={r.id: limits(r.caps.daily, r.caps.weekly, r.caps.monthly) for r in model.reps if r.caps},
                      pools={n: limits(p.caps.daily, p.caps.weekly, p.caps.monthly) for n, p in model.pools.items() if p.caps}),
    )
    return _with_triggers(_with_sla(config, lines), trigger_parts)


UNTRIGGERABLE = ("account_owner", "relationship")
"""Facts routing fills in (account-owner lookup, relationships) that the owned poll never has: a trigger reading
them would compare two different versions of the lead, so it is an error."""


def _trigger_warnings(model: ConfigModel, parts: Sequence[tuple[Trigger, Any, list[Any]]], file: str,
                      lines: dict[PathKey, int]) -> list[Problem]:
    """A trigger reading a lead field that an enabled connector does not map is never true for that CRM's leads."""
    out = []
    direct = (set(CANONICAL_FIELDS) | set(model.fields)) - {"id", *UNTRIGGERABLE}
    for i, (trigger, condition, _) in enumerate(parts):
        for crm, settings in model.connectors.enabled().items():
            mapped = set(settings.fields.values())
            missing = [f for f in condition.fields if f in direct and f not in mapped]
            if missing:
                names = ", ".join(f"'{f}'" for f in missing)
                out.append(Problem(file, line_for(lines, ("triggers", i, "when")), f"triggers[{i}].when",
                                   f"trigger '{trigger.name}' reads {names}, which the {crm} connector does not read "
                                   f"(map it under connectors.{crm}.fields): it never fires for {crm} leads"))
    return out


def _with_triggers(config: RoutingConfig, parts: Sequence[tuple[Trigger, Any, list[Any]]]) -> RoutingConfig:
    """Each trigger with a view of the config whose rules are its own, or the named top-level ones in its order."""
    if not parts:
        return config
    index = {r.name: i for i, r in enumerate(config.rules)}
    compiled: dict[str, CompiledTrigger] = {}
    for trigger, condition, own in parts:
        if trigger.rules:
            rules, tests = trigger.rules, tuple(own)
        else:
            rules = tuple(config.rules[index[n]] for n in trigger.use_rules)
            tests = tuple(config.compiled_rules[index[n]] for n in trigger.use_rules)
        model = config.model.model_copy(update={"rules": rules, "triggers": ()})
        view = replace(config, model=model, compiled_rules=tests, tie_breaks=_tie_breaks(model, tests, config.territory_order),
                       rules_by_territory=_rules_by_territory(model), triggers={})
        compiled[trigger.name] = CompiledTrigger(trigger.name, condition, trigger.refire, view)
    return replace(config, triggers=compiled)


def _with_sla(config: RoutingConfig, lines: dict[PathKey, int]) -> RoutingConfig:
    """Validate and compile the ``sla:`` section against the rest; errors located like the others."""
    check = compile_sla(config.model.sla, config)
    file = config.file
    if check.errors:
        raise ConfigError([Problem(file, line_for(lines, path), _dotted(path), msg) for path, msg in check.errors])
    extra = [Problem(file, line_for(lines, path), _dotted(path), msg) for path, msg in check.warnings]
    return replace(config, sla=check.compiled if config.model.sla is not None else None,
                   warnings=config.warnings + tuple(extra))


DEFAULT_CONFIG = Path("config/routing.yaml")


def config_path() -> Path:
    """The routing config this process uses: ``$LEADROUTE_CONFIG`` or ``config/routing.yaml``."""
    return Path(os.environ.get("LEADROUTE_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | Path, *, today: date | None = None) -> RoutingConfig:
    """Load and validate a config file; raise ConfigError naming file, line and field (``today``: see parse_config)."""
    p = Path(path)
    try:
        text = read_text(p)
    except YamlSyntaxError as exc:
        raise ConfigError([Problem(str(p), 0, "", exc.message)]) from None
    return parse_config(text, str(path), today=today)


__all__ = [
    "CANONICAL_FIELDS",
    "DAYS",
    "Arm",
    "Assign",
    "Caps",
    "ConfigError",
    "ConfigModel",
    "Fallback",
    "Hours",
    "Pool",
    "PoolLoad",
    "Problem",
    "Rep",
    "RoutingConfig",
    "Rule",
    "Split",
    "Territory",
    "load_config",
    "parse_config",
]
