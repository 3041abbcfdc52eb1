"""The one small interface every CRM connector implements, and the registry that names them.

A connector is the only place that knows a CRM. The worker deals in :class:`CrmRecord`
(a raw canonical lead plus the CRM facts it needs), writes :class:`OwnerUpdate` batches and
gets one :class:`WriteResult` per record back, so a partial failure never hides the records
that did succeed, and a failed record says whether trying again later could help.

Errors are split here, at the boundary: :class:`RetriableError` (429, 5xx, timeouts, lock
contention, a session still expired after one refresh, a daily limit used up) means "the
same call may work later; keep the work"; :class:`FatalError` (any other 4xx, bad config,
bad credentials) means "this will not work until a human changes something". The worker's
tasks retry the first and route the second to the fallback with the error in the reason.

Connectors know nothing of Celery or the routing rules; they are plain, synchronous objects
that are safe to use from one thread at a time (one per worker process or thread).
"""

from __future__ import annotations

import base64
import importlib
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.redact import redact_text

if TYPE_CHECKING:
    import redis

    from connectors.settings import ConnectorSettings

__all__ = [
    "AckSignal",
    "ChangePage",
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "CrmRecord",
    "CrmUser",
    "DomainRecord",
    "FatalError",
    "Opportunity",
    "Outcome",
    "OutcomeState",
    "OwnerUpdate",
    "RetriableError",
    "Watermark",
    "WriteResult",
    "WriteStatus",
    "available",
    "create_connector",
    "get_connector_class",
    "register",
]


# ----------------------------------------------------------------------------- errors


class ConnectorError(Exception):
    """A CRM call failed. ``retriable`` says whether the same call may succeed later.

    ``code`` is the CRM's own error code when it gave one (``UNABLE_TO_LOCK_ROW``,
    ``RATE_LIMIT``, ``INVALID_SESSION_ID``...), ``status`` the HTTP status (0 for transport
    failures), ``retry_after`` the CRM's hint in seconds. The message is redacted: it never
    carries a token, password or session id.
    """

    retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        crm: str = "",
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact_text(message)
        self.crm = crm
        self.code = code
        self.status = status
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [p for p in (self.crm, self.code, f"HTTP {self.status}" if self.status else None) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, crm={self.crm!r}, code={self.code!r}, status={self.status!r})"


class RetriableError(ConnectorError):
    """Transient: rate limited, CRM unavailable, timed out, row locked, session expired."""

    retriable = True


class FatalError(ConnectorError):
    """Permanent until a human acts: bad request, unknown record or field, no permission."""

    retriable = False


class ConnectorConfigError(FatalError):
    """The connector cannot be built: unknown name, missing environment variable, bad value."""


# ----------------------------------------------------------------------------- data


class WriteStatus(StrEnum):
    OK = "ok"
    RETRIABLE = "retriable"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to one record of a batch write.

    ``warning`` carries a secondary failure that did not undo the write (e.g. the owner was
    set but the reason Task/Note could not be created).
    """

    id: str
    status: WriteStatus
    code: str | None = None
    message: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is WriteStatus.OK

    @classmethod
    def success(cls, record_id: str, warning: str | None = None) -> WriteResult:
        return cls(record_id, WriteStatus.OK, warning=warning)

    @classmethod
    def failure(cls, record_id: str, error: ConnectorError | None = None, *, retriable: bool | None = None,
                code: str | None = None, message: str | None = None) -> WriteResult:
        """A failed record, from a call-level error or a per-record code and message."""
        if retriable is None:
            retriable = bool(error and error.retriable)
        status = WriteStatus.RETRIABLE if retriable else WriteStatus.FATAL
        return cls(
            record_id,
            status,
            code=code if code is not None else (error.code if error else None),
            message=redact_text(message if message is not None else (error.message if error else "")),
        )


@dataclass(frozen=True, slots=True)
class OwnerUpdate:
    """Set ``owner_id`` (a CRM user or queue id) on a record, with the one-line reason, and any other CRM
    ``fields`` with it (a rejected lead's status set back to open, in the same write)."""

    id: str
    owner_id: str
    reason: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One lead-like record as the CRM holds it now.

    ``lead`` is the raw canonical lead dict (``id, email, company, ...`` plus custom fields,
    values as the CRM gave them: the engine normalises); ``fields`` the CRM fields read
    (mapped ones plus those the intake, acknowledgement and closed conditions use);
    ``needs_routing`` whether the intake condition holds.
    """

    id: str
    modstamp: datetime
    owner_id: str | None
    lead: dict[str, Any]
    fields: Mapping[str, Any]
    needs_routing: bool
    crm: str = ""

    @property
    def key(self) -> str:
        """Identity of this version of the record: the de-duplication key of a change."""
        return f"{self.id}@{_ms(self.modstamp)}"


@dataclass(frozen=True, slots=True)
class AckSignal:
    """The acknowledgement facts of one record, read at SLA-sweep time.

    A record missing from the result of :meth:`Connector.read_acks` was deleted (or merged).
    ``closed`` is the configured ``closed_when`` condition (a converted Salesforce lead).
    """

    id: str
    acknowledged: bool
    closed: bool
    owner_id: str | None
    modstamp: datetime | None
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CrmUser:
    """A user or queue that can own records; ``kind`` is ``user`` or ``queue``."""

    id: str
    name: str
    email: str | None
    active: bool
    kind: str = "user"


class OutcomeState(StrEnum):
    """How far a lead got. ``open``: nothing yet; then ``converted``, ``opportunity`` and ``won`` or ``lost``."""

    OPEN = "open"
    CONVERTED = "converted"
    OPPORTUNITY = "opportunity"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Opportunity:
    """One opportunity (Salesforce) or deal (HubSpot) that came of a lead, as the CRM holds it now.

    ``closed_at`` is the close date (Salesforce ``CloseDate``, a date read as midnight UTC; HubSpot
    ``closedate``), set once the opportunity is closed; ``amount`` and ``currency`` (ISO 4217) are
    ``None`` where the CRM has none.
    """

    id: str
    created_at: datetime | None
    stage: str | None
    is_won: bool
    is_closed: bool
    closed_at: datetime | None = None
    amount: float | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class DomainRecord:
    """An open lead or a contact on a company domain, as :meth:`Connector.recent_by_domain` finds it.

    ``kind`` is ``lead`` or ``contact``; ``owner_id`` the CRM user or queue that owns it now.
    """

    id: str
    kind: str
    owner_id: str | None
    created_at: datetime
    domain: str


def _earliest(when: datetime | None) -> tuple[bool, datetime]:
    return when is None, when or datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one lead, read back from the CRM (:meth:`Connector.read_outcomes`).

    ``converted`` (and when: ``converted_at``) means the lead became a customer prospect: a converted
    Salesforce lead, or a HubSpot contact at lifecycle stage ``opportunity`` or later or with a deal.
    The opportunity fields describe the one opportunity that stands for the lead when it has several
    (HubSpot contacts may have many deals): a won one (the earliest to close), else an open one (the
    earliest created), else the last lost one; ``opportunities`` counts them all. ``fields`` holds the
    CRM facts read (``IsConverted``, ``lifecyclestage``, ``hs_lead_status``...).
    """

    id: str
    converted: bool = False
    converted_at: datetime | None = None
    opportunity_id: str | None = None
    opportunity_created_at: datetime | None = None
    stage: str | None = None
    is_won: bool = False
    is_closed: bool = False
    closed_at: datetime | None = None
    amount: float | None = None
    currency: str | None = None
    opportunities: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, lead_id: str, *, converted: bool, converted_at: datetime | None = None,
           opportunities: Sequence[Opportunity] = (), fields: Mapping[str, Any] | None = None) -> Outcome:
        """The outcome of a lead from its conversion facts and its opportunities (any order).

        An opportunity implies a conversion; without a conversion date the earliest opportunity's
        creation stands in for it.
        """
        opps = list(opportunities)
        won = sorted((o for o in opps if o.is_won), key=lambda o: (*_earliest(o.closed_at), o.id))
        still_open = sorted((o for o in opps if not o.is_closed), key=lambda o: (*_earliest(o.created_at), o.id))
        lost = sorted((o for o in opps if o.is_closed and not o.is_won),
                      key=lambda o: (o.closed_at is not None, o.closed_at or datetime.min.replace(tzinfo=UTC), o.id))
        chosen = won[0] if won else still_open[0] if still_open else lost[-1] if lost else None
        if opps and converted_at is None:
            converted_at = min((o.created_at for o in opps if o.created_at is not None), default=None)
        if chosen is None:
            return cls(lead_id, converted, converted_at if converted else None, fields=dict(fields or {}))
        return cls(
            lead_id, True, converted_at, chosen.id, chosen.created_at, chosen.stage, chosen.is_won, chosen.is_closed,
            chosen.closed_at if chosen.is_closed else None, chosen.amount, chosen.currency, len(opps), dict(fields or {}),
        )

    @property
    def status(self) -> OutcomeState:
        """The furthest state reached."""
        return self.reached[-1] if self.reached else OutcomeState.OPEN

    @property
    def reached(self) -> tuple[OutcomeState, ...]:
        """Every state reached, in order: ``converted``, ``opportunity``, then ``won`` or ``lost``."""
        states: list[OutcomeState] = []
        if self.converted or self.opportunity_id:
            states.append(OutcomeState.CONVERTED)
        if self.opportunity_id:
            states.append(OutcomeState.OPPORTUNITY)
            if self.is_closed:
                states.append(OutcomeState.WON if self.is_won else OutcomeState.LOST)
        return tuple(states)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Watermark:
    """How far the change feed has been read, safe to persist as a string.

    ``at`` is the latest modification time seen. The next read starts ``overlap`` before it,
    because a CRM can commit a change with an earlier timestamp after we have read past it
    (long transactions, HubSpot's search index lag); ``seen`` holds the keys (id + modstamp)
    of the changes already returned inside that overlap, so nothing is returned twice.
    """

    at: datetime
    seen: frozenset[str] = field(default_factory=frozenset)

    def encode(self) -> str:
        """A compact string for :meth:`worker.store.redis_store.RedisStore.set_watermark`."""
        body = json.dumps({"at": _ms(self.at), "seen": sorted(self.seen)}, separators=(",", ":")).encode()
        if len(body) < 512:
            return "j:" + body.decode()
        return "z:" + base64.b64encode(zlib.compress(body, 6)).decode()

    @classmethod
    def decode(cls, text: str | None) -> Watermark | None:
        """Parse :meth:`encode`'s output; ``None`` or ``""`` means "from the beginning"."""
        if not text:
            return None
        kind, _, payload = text.partition(":")
        try:
            raw = payload.encode() if kind == "j" else zlib.decompress(base64.b64decode(payload))
            data = json.loads(raw)
            at = datetime.fromtimestamp(int(data["at"]) / 1000, tz=UTC)
            return cls(at, frozenset(str(k) for k in data.get("seen", ())))
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            raise ConnectorConfigError(f"unreadable watermark {text[:40]!r}: {exc}") from None

    def since(self, overlap: float) -> datetime:
        """Where the next read starts."""
        return self.at - timedelta(seconds=overlap)

    def advance(self, records: Sequence[CrmRecord], overlap: float) -> Watermark:
        """The watermark after ``records`` were handed out; keys outside the overlap are dropped."""
        at = max([self.at, *(r.modstamp for r in records)])
        floor = _ms(at - timedelta(seconds=overlap))
        keys = {k for k in self.seen if int(k.rpartition("@")[2]) >= floor}
        keys.update(r.key for r in records if _ms(r.modstamp) >= floor)
        return Watermark(at, frozenset(keys))


@dataclass(frozen=True, slots=True)
class ChangePage:
    """A page of changed records and the watermark to store once they are safely handled."""

    records: list[CrmRecord]
    watermark: Watermark


# ----------------------------------------------------------------------------- interface


class Connector(ABC):
    """What the worker may ask of a CRM. Implementations: ``salesforce``, ``hubspot``.

    Every method retries transient failures itself (bounded, with backoff that honours the
    CRM's hints) and waits for the connection's shared rate-limit token before each call;
    when it gives up it raises :class:`RetriableError` (or reports the records retriable),
    so nothing is ever silently dropped.
    """

    name: ClassVar[str]
    write_batch_max: ClassVar[int]

    @abstractmethod
    def changes(self, since: Watermark | None, *, intake_only: bool = True, full: bool = False) -> Iterator[ChangePage]:
        """Records modified since ``since`` (all of them when ``None``), oldest first, in pages.

        Each record carries what queueing it needs: id, modstamp, owner and the intake
        condition's fields (``needs_routing``); its ``lead`` holds only the ``id``, as the
        router reads every record fresh with :meth:`fetch`. With ``full`` each record is read
        as :meth:`fetch` reads it instead (every mapped field, in the same query). With ``intake_only``
        only records matching the intake condition are returned
        (filtered in the CRM where it can, re-checked here). Each page carries the watermark
        to persist after its records are handled; a record is never returned twice for the
        same modification.
        """

    def owned_changes(self, since: Watermark | None) -> Iterator[ChangePage]:
        """Records a user owns (:meth:`user_owned`) modified since ``since``, oldest first, in pages, each read in
        full (for hand-off triggers and rejections by status), whether or not the intake condition holds (a
        status-only intake holds for leads already routed). Same watermark rules as :meth:`changes`; a page may
        come back empty while the watermark moves on."""
        for page in self.changes(since, intake_only=False, full=True):
            yield ChangePage([r for r in page.records if self.user_owned(r)], page.watermark)

    def user_owned(self, record: CrmRecord) -> bool:
        """Whether a person owns the record (not a queue, not nobody). By default: it has an owner."""
        return bool(record.owner_id)

    @abstractmethod
    def fetch(self, ids: Sequence[str]) -> dict[str, CrmRecord]:
        """Fresh copies of the given records; deleted or unknown ids are absent."""

    @abstractmethod
    def write_owners(self, updates: Sequence[OwnerUpdate]) -> list[WriteResult]:
        """Set owners (and the reason, as configured) in the largest batches the CRM allows.

        Returns one result per update, in order. Lock contention is retried for the failed
        records alone before they are reported.
        """

    @abstractmethod
    def attach_reasons(self, reasons: Mapping[str, str]) -> list[WriteResult]:
        """Write a routing or SLA reason to records (field and/or Task/Note) without owner changes."""

    @abstractmethod
    def read_acks(self, ids: Sequence[str]) -> dict[str, AckSignal]:
        """Acknowledgement signals for a batch of ids (deleted records are absent)."""

    @abstractmethod
    def read_outcomes(self, ids: Sequence[str]) -> dict[str, Outcome]:
        """What became of each lead (converted, opportunity, won or lost, amount), keyed by the ids as given.

        Read in the CRM's largest batches, a few calls per batch whatever its size (never one per
        lead); deleted, merged or unknown ids are absent, an open lead reads back as ``open``.
        """

    @abstractmethod
    def list_owners(self) -> list[CrmUser]:
        """Every user and queue that can own records, active or not (to check config ids)."""

    @abstractmethod
    def account_owner(self, domain: str) -> str | None:
        """The owner of the account whose company domain is ``domain`` (cached), if any."""

    def open_pipeline(self) -> dict[str, int]:
        """Open opportunities (Salesforce) or deals (HubSpot) per owner id, for ``least_loaded`` pools that weigh
        them (``load: {opportunities: ...}``). One batched read of the whole CRM (paginated), never one per rep
        or lead; owners with none are absent."""
        raise FatalError(f"{self.name} cannot count open opportunities", crm=self.name, code="UNSUPPORTED")

    def recent_by_domain(self, domains: Sequence[str], since: datetime) -> dict[str, list[DomainRecord]]:
        """Open leads and contacts created at or after ``since`` on each company domain, newest first, keyed by
        the domains as given (normalised, as :func:`connectors.domains.domain_of` gives them); a domain
        without any is absent. Batched: a few queries per batch of domains, never one per lead."""
        raise FatalError(f"{self.name} cannot look up leads by domain", crm=self.name, code="UNSUPPORTED")

    @classmethod
    def warm_up(cls) -> None:
        """Import what the first instance would import lazily (a prefork parent calls it once for
        every child, so no child pays for it on its first task). Nothing to do by default."""
        return None

    def account_owners(self, domains: Sequence[str]) -> dict[str, str | None]:
        """Account owners for many domains; connectors that can look them up in one call override this."""
        return {domain: self.account_owner(domain) for domain in dict.fromkeys(domains)}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- registry

Factory = Callable[..., Connector]

_REGISTRY: dict[str, str | Factory] = {
    "salesforce": "connectors.salesforce:SalesforceConnector",
    "hubspot": "connectors.hubspot:HubSpotConnector",
}


def register(name: str, factory: str | Factory) -> None:
    """Add a connector: a class (or ``"module:Class"`` path, imported on first use)."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Registered connector names."""
    return sorted(_REGISTRY)


def get_connector_class(name: str) -> Any:
    """The connector class registered as ``name``; an unknown name is a config error."""
    target = _REGISTRY.get(name)
    if target is None:
        from connectors.settings import ConnectorsConfig  # pydantic models load only for this error

        known = ", ".join(available())
        hint = " (not configurable yet)" if name not in ConnectorsConfig.model_fields else ""
        raise ConnectorConfigError(f"unknown connector {name!r}{hint}; known connectors: {known}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = target
    return target


def create_connector(
    name: str,
    settings: ConnectorSettings | None = None,
    *,
    redis_client: redis.Redis | None = None,
    prefix: str = "leadroute",
    env: Mapping[str, str] | None = None,
) -> Connector:
    """Build the named connector from its settings and the environment (credentials, hosts).

    ``redis_client`` holds the rate-limit bucket shared by every worker and the account-owner
    cache; without it both are process-local (fine for one-off CLI commands and tests).
    """
    cls = get_connector_class(name)
    return cls.from_env(settings, redis_client=redis_client, prefix=prefix, env=env)
