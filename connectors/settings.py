"""The ``connectors:`` section of the routing YAML: what each CRM connector reads and writes.

Everything org-specific lives here rather than in code: which object holds leads, how CRM
fields map to the canonical lead fields the engine understands, which records need routing
(the *intake* condition), what counts as a rep acknowledging a lead, how the routing reason
is written back, and how hard we may lean on the CRM's API allowance. Secrets never live
here: they come from the environment (see ``docs/connectors.md``).

The top-level model is :class:`ConnectorsConfig`; the routing config embeds it as
``connectors: {salesforce: {...}, hubspot: {...}}``. A connector that is not listed is not
used. Every model is frozen and rejects unknown keys, so a typo is a load-time error that
names the field, like the rest of the config.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AccountLookupSettings",
    "Condition",
    "ConnectorSettings",
    "ConnectorsConfig",
    "DailyLimitSettings",
    "HubSpotSettings",
    "RateLimitSettings",
    "ReasonSettings",
    "RejectionSettings",
    "RetrySettings",
    "SalesforceSettings",
    "TimeoutSettings",
    "parse_seconds",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_seconds(value: Any) -> Any:
    """Accept ``90``, ``1.5``, ``"90s"``, ``"2m"``, ``"250ms"``: humans write durations both ways."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (use seconds, or e.g. '30s', '2m', '1h')")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


Seconds = Annotated[float, BeforeValidator(parse_seconds), Field(ge=0)]
Scalar = str | int | float | bool | None
_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_OPERATORS = ("eq", "ne", "in_", "not_in", "exists", "gt", "gte", "lt", "lte")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_field_name(name: str) -> str:
    if not _FIELD_RE.match(name):
        raise ValueError(f"{name!r} is not a CRM field name (letters, digits and underscores, starting with a letter)")
    return name


# ----------------------------------------------------------------------------- conditions


class Condition(_Model):
    """A test on CRM fields: ``{field: F, <operator>: V, ...}``, ``{all: [...]}`` or ``{any: [...]}``.

    A list is shorthand for ``all``. Several operators in one field test must all hold.
    Comparisons are on text, case-insensitively (Salesforce compares strings that way and
    HubSpot stores every property as text); a missing value reads as ``""``, so
    ``not_in: [NEW, ""]`` means "set, and not NEW". ``exists`` is true for a non-empty
    value; ``eq: null`` tests for a missing one. ``gt``/``gte``/``lt``/``lte`` compare
    numbers as numbers and anything else (e.g. ISO timestamps) as text.
    """

    field: str | None = None
    eq: Scalar = None
    ne: Scalar = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Scalar, ...] | None = None
    exists: bool | None = None
    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None
    all: tuple[Condition, ...] | None = Field(default=None, min_length=1)
    any: tuple[Condition, ...] | None = Field(default=None, min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _list_is_all(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {"all": list(value)}
        return value

    @field_validator("field")
    @classmethod
    def _field_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_field_name(value)

    @field_validator("in_", "not_in", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, list | tuple):
            return (value,)
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Condition:
        shapes = [name for name in ("field", "all", "any") if getattr(self, name) is not None]
        if len(shapes) != 1:
            raise ValueError("a condition is one of {field: F, <operator>: V}, {all: [...]} or {any: [...]}")
        ops = self.operators()
        if self.field is None and ops:
            raise ValueError(f"operators {sorted(ops)} need a 'field' to test")
        if self.field is not None and not ops:
            raise ValueError(
                f"test on {self.field!r} has no operator (use one of eq, ne, in, not_in, exists, gt, gte, lt, lte)"
            )
        return self

    def operators(self) -> dict[str, Any]:
        """The operators given, by their YAML names (``eq: null`` counts)."""
        return {
            ("in" if name == "in_" else name): getattr(self, name)
            for name in _OPERATORS
            if name in self.model_fields_set
        }

    def fields(self) -> set[str]:
        """Every CRM field the condition reads (so the connector selects them)."""
        if self.field is not None:
            return {self.field}
        return set().union(*(c.fields() for c in (self.all or self.any or ())))


Condition.model_rebuild()


# ----------------------------------------------------------------------------- politeness


class RateLimitSettings(_Model):
    """A CRM's published allowance and how much of it one connection may use.

    The token bucket shared by every worker refills at ``(requests * (1 - headroom) - burst)
    / per_seconds`` tokens a second and holds at most ``burst``: in any window of
    ``per_seconds`` it can never hand out more than ``requests * (1 - headroom)`` tokens, so
    a rolling-window limit like HubSpot's is never hit even when requests arrive in a burst.
    """

    requests: int = Field(gt=0)
    per_seconds: Seconds = Field(gt=0)
    burst: int = Field(default=1, gt=0)
    headroom: float = Field(default=0.03, ge=0, lt=1)

    @model_validator(mode="after")
    def _positive_rate(self) -> RateLimitSettings:
        if self.rate <= 0:
            raise ValueError(
                f"burst {self.burst} leaves no steady rate within {self.requests} requests per "
                f"{self.per_seconds:g}s (headroom {self.headroom:g}); lower burst or headroom"
            )
        return self

    @property
    def rate(self) -> float:
        """Tokens per second in steady state."""
        return (self.requests * (1 - self.headroom) - self.burst) / self.per_seconds


class DailyLimitSettings(_Model):
    """Daily-allocation awareness: past ``slow_down_at`` of the day's calls, go slower.

    The share is read from the CRM's own usage headers (Salesforce ``Sforce-Limit-Info``,
    HubSpot ``X-HubSpot-RateLimit-Daily*``) on every response; when it is above the
    threshold the shared bucket refills at ``slow_down_factor`` of its rate, which leaves
    the rest of the day's allocation to the org's other integrations and its humans.
    """

    slow_down_at: float = Field(default=0.9, gt=0, le=1)
    slow_down_factor: float = Field(default=0.25, gt=0, le=1)


class RetrySettings(_Model):
    """Bounded retries for transient failures; after that the caller gets "retriable".

    Without a hint from the CRM the pause before try ``n + 1`` is drawn from ``initial_wait / 2`` up to
    ``initial_wait * 2 ** (n - 1)``, at most ``max_backoff``: however long the CRM has been down, a call
    that is still retrying notices it is back within ``max_backoff`` (it holds its batch and its worker
    meanwhile). A hint (``Retry-After``) is slept as given up to ``max_wait``; a longer one hands the
    work back at once.
    """

    attempts: int = Field(default=6, ge=1, le=50)
    initial_wait: Seconds = 0.5
    max_backoff: Seconds = Field(default=1.0, gt=0)
    max_wait: Seconds = 30.0
    max_total: Seconds = 120.0
    lock_attempts: int = Field(default=3, ge=1, le=20)


class TimeoutSettings(_Model):
    connect: Seconds = Field(default=5.0, gt=0)
    read: Seconds = Field(default=60.0, gt=0)


class AccountLookupSettings(_Model):
    """How account owners are found by domain, and how long an answer is cached in Redis."""

    contacts: bool = False
    ttl: Seconds = 3600.0
    negative_ttl: Seconds = 300.0


class ReasonSettings(_Model):
    """Where the one-line routing reason goes: a field on the record and/or an activity."""

    field: str | None = None
    activity: bool = False
    subject: str = Field(default="Routed by leadroute", min_length=1, max_length=255)
    max_length: int = Field(default=255, ge=16, le=65536)

    @field_validator("field")
    @classmethod
    def _field_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_field_name(value)


class RejectionSettings(_Model):
    """A rep rejects a lead by setting ``field`` (e.g. ``Status``) to one of ``values``
    (``Rejected - Not my territory``); the value is the rejection's reason. The lead is routed again and
    ``field`` is set to ``reopen`` (e.g. ``Open - Not Contacted``) with the new owner, so the new owner
    gets an open lead and the old status is not read as their rejection."""

    field: str
    values: tuple[str, ...] = Field(min_length=1)
    reopen: str = Field(min_length=1)

    @field_validator("field")
    @classmethod
    def _field_name(cls, value: str) -> str:
        return _check_field_name(value)

    @field_validator("values", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _reopen_is_not_a_rejection(self) -> RejectionSettings:
        if self.reopen.strip().casefold() in {v.strip().casefold() for v in self.values}:
            raise ValueError(f"reopen {self.reopen!r} is one of the rejection values: the new owner would reject it at once")
        return self

    def reason(self, fields: Any) -> str | None:
        """The rejection value the record's ``fields`` hold (its reason), or None when it is not rejected."""
        value = fields.get(self.field) if hasattr(fields, "get") else None
        if value is None and hasattr(fields, "items"):  # Salesforce field names are case-insensitive
            value = next((v for k, v in fields.items() if str(k).lower() == self.field.lower()), None)
        if value is None:
            return None
        text = str(value).strip()
        return text if text.casefold() in {v.strip().casefold() for v in self.values} else None


def _field_map(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value


class _ConnectorBase(_Model):
    fields: Annotated[dict[str, str], BeforeValidator(_field_map)] = Field(default_factory=dict)
    intake: Condition | None = None
    acknowledged_when: Condition | None = None
    closed_when: Condition | None = None
    reason: ReasonSettings = ReasonSettings()
    overlap: Seconds = 120.0
    daily_limit: DailyLimitSettings = DailyLimitSettings()
    retry: RetrySettings = RetrySettings()
    timeout: TimeoutSettings = TimeoutSettings()
    account_lookup: AccountLookupSettings = AccountLookupSettings()
    rejection: RejectionSettings | None = None  # rejection by CRM status (worker.steps.handoffs)

    @field_validator("fields")
    @classmethod
    def _check_map(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for crm_field, canonical in value.items():
            _check_field_name(crm_field)
            if not re.match(r"^[a-z][a-z0-9_]*$", canonical):
                raise ValueError(f"canonical field {canonical!r} (for {crm_field}) must be lower_snake_case")
            if canonical in seen:
                raise ValueError(f"{crm_field} and {seen[canonical]} both map to {canonical!r}")
            seen[canonical] = crm_field
        return value


# ----------------------------------------------------------------------------- Salesforce

SALESFORCE_LEAD_FIELDS: dict[str, str] = {
    "Id": "id",
    "Email": "email",
    "Company": "company",
    "Website": "website",
    "Country": "country",
    "State": "state",
    "PostalCode": "postcode",
    "NumberOfEmployees": "employees",
    "AnnualRevenue": "annual_revenue",
    "Industry": "industry",
    "LeadSource": "lead_source",
    "Title": "title",
    "CreatedDate": "created_at",
}
SALESFORCE_CONTACT_FIELDS: dict[str, str] = {
    "Id": "id",
    "Email": "email",
    "MailingCountry": "country",
    "MailingState": "state",
    "MailingPostalCode": "postcode",
    "LeadSource": "lead_source",
    "Title": "title",
    "CreatedDate": "created_at",
}


class SalesforceSettings(_ConnectorBase):
    """Salesforce through simple-salesforce; defaults suit the standard Lead object.

    Defaults: intake = open, unconverted leads in status "Open - Not Contacted" (add your
    intake queue or integration user as ``OwnerId in [...]`` in production);
    acknowledged = the status has left "Open - Not Contacted"; closed = converted.
    """

    object: Literal["Lead", "Contact"] = "Lead"
    api_version: str | None = Field(default=None, pattern=r"^\d+\.\d$")
    # no per-second limit at Salesforce (only the daily allocation): a politeness cap of 25 req/s over 10 s windows
    rate_limit: RateLimitSettings = RateLimitSettings(requests=250, per_seconds=10.0, burst=2, headroom=0.0)
    write_batch_size: int = Field(default=200, ge=1, le=200)
    query_batch_size: int = Field(default=2000, ge=200, le=2000)

    @model_validator(mode="before")
    @classmethod
    def _object_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        obj = data.get("object", "Lead")
        if "fields" not in data:
            data["fields"] = SALESFORCE_CONTACT_FIELDS if obj == "Contact" else SALESFORCE_LEAD_FIELDS
        if obj == "Lead":
            data.setdefault(
                "intake",
                {"all": [{"field": "IsConverted", "eq": False}, {"field": "Status", "eq": "Open - Not Contacted"}]},
            )
            data.setdefault("acknowledged_when", {"field": "Status", "not_in": ["Open - Not Contacted"]})
            data.setdefault("closed_when", {"field": "IsConverted", "eq": True})
        else:
            data.setdefault("acknowledged_when", {"field": "LastActivityDate", "exists": True})
        return data


# ----------------------------------------------------------------------------- HubSpot

HUBSPOT_CONTACT_FIELDS: dict[str, str] = {
    "email": "email",
    "company": "company",
    "website": "website",
    "country": "country",
    "state": "state",
    "zip": "postcode",
    "numemployees": "employees",
    "annualrevenue": "annual_revenue",
    "industry": "industry",
    "hs_analytics_source": "lead_source",
    "hubspotscore": "score",
    "hs_language": "language",
    "jobtitle": "title",
    "createdate": "created_at",
}


class HubSpotSettings(_ConnectorBase):
    """HubSpot contacts through hubspot-api-client.

    Defaults: intake = contacts without an owner; acknowledged = a lead status other than
    NEW, or a sales activity logged (``notes_last_contacted`` set). Rate limits default to
    the lower private-app tier (100 requests per 10 s; raise ``requests`` to 190 on
    Professional/Enterprise) and the search API's own 5 requests/s.
    """

    object: Literal["contacts"] = "contacts"
    rate_limit: RateLimitSettings = RateLimitSettings(requests=100, per_seconds=10.0, burst=3, headroom=0.02)
    search_rate_limit: RateLimitSettings = RateLimitSettings(requests=5, per_seconds=1.0, burst=1, headroom=0.05)
    write_batch_size: int = Field(default=100, ge=1, le=100)
    search_page_size: int = Field(default=200, ge=1, le=200)
    search_result_cap: int = Field(default=10_000, ge=200, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _object_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data.setdefault("fields", HUBSPOT_CONTACT_FIELDS)
        data.setdefault("intake", {"field": "hubspot_owner_id", "exists": False})
        data.setdefault(
            "acknowledged_when",
            {"any": [{"field": "hs_lead_status", "not_in": ["NEW", ""]}, {"field": "notes_last_contacted", "exists": True}]},
        )
        return data


ConnectorSettings = SalesforceSettings | HubSpotSettings


class ConnectorsConfig(_Model):
    """The ``connectors:`` section; a connector is used only if it is listed here."""

    salesforce: SalesforceSettings | None = None
    hubspot: HubSpotSettings | None = None

    def enabled(self) -> dict[str, ConnectorSettings]:
        """Configured connectors by registry name."""
        return {name: value for name in ("salesforce", "hubspot") if (value := getattr(self, name)) is not None}
