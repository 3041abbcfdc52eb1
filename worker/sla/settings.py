"""The ``sla:`` section of the routing YAML: tiers, acknowledgement signals and breach ladders.

The models are frozen and reject unknown keys, like the rest of the config, so a typo is a
load-time error that names the field. :func:`compile_sla` checks what the models alone
cannot (tier conditions against the routing config's fields, territories and segments;
duplicate tier names; signals for connectors that are not configured) and returns every
problem as ``(path, message)`` with the path from the file's root, so the config loader can
turn it into ``file:line: sla.tiers[0].when.score: ...``.

Durations are written with a unit (``30s``, ``15m``, ``4h``, ``1d``, or ``1h30m``): a bare
number is refused, because a RevOps user who writes ``15`` may mean minutes or seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from connectors.settings import Condition as SignalCondition
from worker.domain.names import suggest
from worker.routing.conditions import Condition, ConditionError, compile_when

if TYPE_CHECKING:
    from connectors.settings import ConnectorsConfig
    from worker.config.schema import RoutingConfig

__all__ = [
    "ACTIONS",
    "AcknowledgedWhen",
    "ClockKind",
    "CompiledSla",
    "LadderAction",
    "LadderStep",
    "OnRepAway",
    "SlaCheck",
    "SlaSettings",
    "Tier",
    "compile_sla",
    "connectors_with_signals",
    "format_duration",
    "parse_duration",
]

PathKey = tuple[str | int, ...]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhd]\s*)+$", re.IGNORECASE)


class LadderAction(StrEnum):
    """What a ladder step does when its time comes and the lead is still unacknowledged."""

    REMIND = "remind"  # the owner again, louder
    ESCALATE = "escalate"  # the owner's manager
    REASSIGN = "reassign"  # the next eligible rep, never an earlier owner


ACTIONS = tuple(a.value for a in LadderAction)


class ClockKind(StrEnum):
    WALL = "wall"
    BUSINESS_HOURS = "business_hours"


class OnRepAway(StrEnum):
    """What happens to a rep's unacknowledged leads when the rep goes out of office."""

    REASSIGN_NOW = "reassign_now"
    WAIT = "wait"


def parse_duration(value: Any) -> timedelta:
    """``"30s"``, ``"15m"``, ``"4h"``, ``"1d"``, ``"1h30m"`` (or a timedelta) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):  # bool included
        raise ValueError(f"{value!r} has no unit; write e.g. '{value}m' for minutes or '{value}s' for seconds")
    if isinstance(value, str) and _WHOLE.match(value):
        seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _PART.findall(value))
        return timedelta(seconds=seconds)
    raise ValueError(f"{value!r} is not a duration; write e.g. '30s', '15m', '4h', '1d' or '1h30m'")


def format_duration(value: timedelta | float) -> str:
    """The short form used in reasons and reports: ``15m``, ``4h``, ``1d2h``, ``90s``."""
    seconds = round(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            out += f"{n}{unit}"
    return out


def _positive(value: Any) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError("must be longer than zero")
    return duration


Duration = Annotated[timedelta, BeforeValidator(_positive)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LadderStep(_Model):
    """One rung: ``{after: 15m, action: escalate}``; ``after`` counts from assignment on the tier's clock."""

    after: Duration
    action: LadderAction

    @field_validator("action", mode="before")
    @classmethod
    def _known_action(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() not in ACTIONS:
            hint = suggest(value.strip().lower(), ACTIONS)
            raise ValueError(f"unknown action '{value}'{hint}; use one of {', '.join(ACTIONS)}")
        return value.strip().lower() if isinstance(value, str) else value


class Tier(_Model):
    """A class of leads with its own acknowledgement window and breach ladder."""

    name: str = Field(min_length=1)
    when: dict[str, Any] = Field(default_factory=dict)
    acknowledge_within: Duration
    clock: ClockKind = ClockKind.WALL
    ladder: tuple[LadderStep, ...] = ()
    max_reassignments: int = Field(default=2, ge=0, le=50)
    on_rep_away: OnRepAway | None = None

    @field_validator("ladder")
    @classmethod
    def _ordered(cls, ladder: tuple[LadderStep, ...]) -> tuple[LadderStep, ...]:
        for j in range(1, len(ladder)):
            if ladder[j].after <= ladder[j - 1].after:
                raise PydanticCustomError(
                    "ladder_order",
                    "after {this} must be later than the step before it (after {prev}); "
                    "list the steps in increasing 'after'",
                    {"step": j, "before": j - 1, "this": format_duration(ladder[j].after),
                     "prev": format_duration(ladder[j - 1].after)},
                )
        for j, step in enumerate(ladder[:-1]):
            if step.action is LadderAction.REASSIGN:
                raise PydanticCustomError(
                    "ladder_after_reassign",
                    "steps after a reassign never run (the new owner starts the ladder again); "
                    "make reassign the last step",
                    {"step": j + 1},
                )
        return ladder

    @property
    def reassigns(self) -> bool:
        return any(s.action is LadderAction.REASSIGN for s in self.ladder)


class AcknowledgedWhen(_Model):
    """Per connector, what in the CRM record means a rep has acknowledged the lead.

    Same syntax as ``connectors.<crm>.acknowledged_when`` (see :class:`connectors.settings.Condition`);
    given here, it replaces that connector's signal.
    """

    salesforce: SignalCondition | None = None
    hubspot: SignalCondition | None = None

    def for_crm(self, crm: str) -> SignalCondition | None:
        return getattr(self, crm, None)


class SlaSettings(_Model):
    """The ``sla:`` section."""

    sweep_every: Duration = timedelta(seconds=30)
    recheck_every: Duration = timedelta(hours=1)
    on_rep_away: OnRepAway = OnRepAway.REASSIGN_NOW
    tiers: tuple[Tier, ...] = ()
    acknowledged_when: AcknowledgedWhen = AcknowledgedWhen()

    def away_policy(self, tier: Tier) -> OnRepAway:
        """The tier's own ``on_rep_away`` or the section default."""
        return tier.on_rep_away or self.on_rep_away


@dataclass(frozen=True)
class CompiledSla:
    """The ``sla:`` section ready for the sweep: tiers with compiled conditions, by name."""

    settings: SlaSettings
    conditions: tuple[Condition, ...]
    by_name: dict[str, Tier] = field(default_factory=dict)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self.settings.tiers

    def tier_for(self, facts: Mapping[str, Any]) -> Tier | None:
        """The first tier whose ``when`` holds for a lead's facts (see ``derive_facts``), or None."""
        for tier, condition in zip(self.settings.tiers, self.conditions, strict=True):
            if condition.test(facts):
                return tier
        return None

    def tier(self, name: str) -> Tier | None:
        return self.by_name.get(name)

    def away_policy(self, tier: Tier) -> OnRepAway:
        return self.settings.away_policy(tier)


@dataclass(frozen=True)
class SlaCheck:
    """The outcome of :func:`compile_sla`: the compiled section (None on errors), errors and warnings.

    Every path starts at the file's root (``("sla", "tiers", 0, "when", "score")``).
    """

    compiled: CompiledSla | None
    errors: list[tuple[PathKey, str]]
    warnings: list[tuple[PathKey, str]]

    @property
    def ok(self) -> bool:
        return not self.errors


def _pydantic_errors(exc: ValidationError, root: PathKey) -> list[tuple[PathKey, str]]:
    out: list[tuple[PathKey, str]] = []
    for err in exc.errors():
        loc: PathKey = (*root, *err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        if err["type"] in ("ladder_order", "ladder_after_reassign"):
            loc = (*loc, int(ctx["step"]), "after") if err["type"] == "ladder_order" else (*loc, int(ctx["step"]))
        elif err["type"] == "extra_forbidden":
            model = _model_at(err["loc"][:-1])
            valid = list(model.model_fields) if model else []
            msg = f"unknown key '{loc[-1]}'{suggest(str(loc[-1]), valid)}"
        elif err["type"] == "missing":
            msg = f"required key '{loc[-1]}' is missing"
        elif err["type"] == "enum":
            msg = f"'{err.get('input')}' is not one of {ctx.get('expected', '')}"
        out.append((loc, msg))
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = SlaSettings
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        model = {
            (SlaSettings, "tiers"): Tier,
            (SlaSettings, "acknowledged_when"): AcknowledgedWhen,
            (Tier, "ladder"): LadderStep,
        }.get((model, part))
    return model


def compile_sla(
    section: SlaSettings | Mapping[str, Any] | None,
    config: RoutingConfig,
    *,
    root: PathKey = ("sla",),
) -> SlaCheck:
    """Validate the ``sla:`` section against a routing config; never raises for bad input.

    ``section`` is the raw YAML mapping or an already-validated :class:`SlaSettings`
    (``None`` means no SLA: an empty, valid section).
    """
    errors: list[tuple[PathKey, str]] = []
    warnings: list[tuple[PathKey, str]] = []
    if section is None:
        settings = SlaSettings()
    elif isinstance(section, SlaSettings):
        settings = section
    elif not isinstance(section, Mapping):
        return SlaCheck(None, [(root, "expected a mapping with tiers, acknowledged_when and sweep_every")], [])
    else:
        try:
            settings = SlaSettings.model_validate(dict(section))
        except ValidationError as exc:
            return SlaCheck(None, _pydantic_errors(exc, root), [])
    model = config.model
    territories = set(model.territories)
    extra_fields = set(model.fields)
    segments = set(model.segments)
    conditions: list[Condition] = []
    seen: dict[str, int] = {}
    for i, tier in enumerate(settings.tiers):
        here = (*root, "tiers", i)
        if tier.name in seen:
            errors.append(((*here, "name"), f"duplicate tier name '{tier.name}' (also tiers[{seen[tier.name]}])"))
        seen.setdefault(tier.name, i)
        try:
            conditions.append(compile_when(tier.when, territories, extra_fields, segments))
        except ConditionError as exc:
            errors.append(((*here, "when", *exc.path), exc.message))
        if tier.max_reassignments and not tier.reassigns:
            warnings.append(((*here, "max_reassignments"),
                             f"tier '{tier.name}' has no reassign step, so max_reassignments is never used"))
        if any(s.action is LadderAction.ESCALATE for s in tier.ladder):
            lacking = sorted(r.id for r in model.reps if not r.manager)
            if lacking:
                shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
                warnings.append(((*here, "ladder"),
                                 f"reps without a manager ({shown}): their escalations go to the alert channel"))
    for i, tier in enumerate(settings.tiers[:-1]):
        if not tier.when:
            for j in range(i + 1, len(settings.tiers)):
                warnings.append(((*root, "tiers", j),
                                 f"tier '{settings.tiers[j].name}' can never match: tier '{tier.name}' "
                                 "above it has no conditions"))
            break
    connectors = getattr(model, "connectors", None)
    enabled = set(connectors.enabled()) if connectors is not None else None
    for crm in ("salesforce", "hubspot"):
        if settings.acknowledged_when.for_crm(crm) is not None and enabled is not None and crm not in enabled:
            warnings.append(((*root, "acknowledged_when", crm),
                             f"{crm} is not configured under 'connectors:', so this signal is unused"))
    if errors:
        return SlaCheck(None, errors, warnings)
    compiled = CompiledSla(settings, tuple(conditions), {t.name: t for t in settings.tiers})
    return SlaCheck(compiled, errors, warnings)


def connectors_with_signals(connectors: ConnectorsConfig, settings: SlaSettings | None) -> ConnectorsConfig:
    """The ``connectors:`` section with ``sla.acknowledged_when`` applied over each connector's own signal.

    Connectors evaluate the acknowledgement signal themselves (``Connector.read_acks``), so
    build them from this so that the ``sla:`` section's signal is the one that counts.
    """
    if settings is None:
        return connectors
    update = {}
    for crm, current in connectors.enabled().items():
        signal = settings.acknowledged_when.for_crm(crm)
        if signal is not None:
            update[crm] = current.model_copy(update={"acknowledged_when": signal})
    return connectors.model_copy(update=update) if update else connectors
