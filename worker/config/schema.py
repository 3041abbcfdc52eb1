"""The routing configuration: one YAML file, validated on load with errors that point at a line.

``load_config(path)`` returns a ``RoutingConfig`` whose rules are compiled and ready for the
engine, or raises ``ConfigError`` listing *every* problem found as
``file:line: field.path: what is wrong (did you mean ...?)``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from datetime import date, time
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.settings import ConnectorsConfig, parse_seconds
from worker.config.yamlpos import PathKey, YamlSyntaxError, line_for, load_with_lines, read_text
from worker.domain.names import suggest
from worker.domain.normalize import country_code, region_code
from worker.notify.settings import NotificationsConfig
from worker.routing.conditions import CANONICAL_FIELDS, ConditionError, compile_when
from worker.routing.state import Strategy
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


class Pool(_Model):
    members: tuple[str, ...]
    strategy: Strategy = Strategy.ROUND_ROBIN


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

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("*")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration, e.g. 15s")
        return value


class Rule(_Model):
    name: str = Field(min_length=1)
    when: dict[str, Any] = Field(default_factory=dict)
    assign: Assign


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
            msg = f"'{got}' is not one of {err['ctx']['expected']}"
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
    backups = {r.id: r.backup for r in model.reps if r.backup in known}
    reported: set[str] = set()
    for i, rep in enumerate(model.reps):
        chain, cur = [rep.id], backups.get(rep.id)
        while cur and cur not in chain:
            chain.append(cur)
            cur = backups.get(cur)
        if cur == rep.id and len(chain) > 1 and rep.id not in reported:
            reported.update(chain)
            err(("reps", i, "backup"), "backup cycle: " + " -> ".join([*chain, rep.id]))
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
        problems.extend(_check_target(rule.assign, ("rules", i, "assign"), model, known, file, lines))
    problems.extend(_check_target(model.fallback, ("fallback",), model, known, file, lines))
    return problems


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


def _version_hash(model: ConfigModel) -> str:
    canonical = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def parse_config(text: str, file: str = "<config>") -> RoutingConfig:
    """Validate YAML text; raise ConfigError with every problem, located."""
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
    if problems:
        raise ConfigError(problems)
    warnings = []
    for i, rule in enumerate(model.rules[:-1]):
        if not rule.when:
            for j in range(i + 1, len(model.rules)):
                later = model.rules[j]
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
    default_zone = ZoneInfo(model.timezone)
    zones = {r.id: ZoneInfo(r.timezone) if r.timezone else default_zone for r in model.reps}
    config = RoutingConfig(
        model=model,
        file=file,
        version_hash=_version_hash(model),
        reps={r.id: r for r in model.reps},
        zones=zones,
        territory_order=tuple(territory_order),
        compiled_rules=tuple(compiled),
        compiled_segments=tuple(segments),
        crm_owner_index={cid: r.id for r in model.reps for cid in r.crm_ids.values()},
        warnings=tuple(warnings),
    )
    return _with_sla(config, lines)


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


def load_config(path: str | Path) -> RoutingConfig:
    """Load and validate a config file; raise ConfigError naming file, line and field."""
    p = Path(path)
    try:
        text = read_text(p)
    except YamlSyntaxError as exc:
        raise ConfigError([Problem(str(p), 0, "", exc.message)]) from None
    return parse_config(text, str(path))


__all__ = [
    "CANONICAL_FIELDS",
    "DAYS",
    "Assign",
    "ConfigError",
    "ConfigModel",
    "Fallback",
    "Hours",
    "Pool",
    "Problem",
    "Rep",
    "RoutingConfig",
    "Rule",
    "Territory",
    "load_config",
    "parse_config",
]
