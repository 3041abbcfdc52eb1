"""HubSpot contacts through hubspot-api-client: search reads, batch updates, owners.

The client is built as ``HubSpot(access_token=..., host=..., ssl_ca_cert=...)`` with
urllib3 retries switched off: its ``Retry`` would not retry the POSTs that search and batch
calls are anyway, and retrying is ours (tenacity, honouring ``Retry-After`` and the
``X-HubSpot-RateLimit-*`` headers) so every attempt is paced by the shared bucket.

Reads use the search API filtered and sorted on ``lastmodifieddate`` (epoch-millisecond
strings; ``hs_lastmodifieddate`` silently fails for contacts), paged with ``after``. Search
refuses to page past 10,000 results, so a long backlog is read in windows: when the cap is
near, the filter is re-anchored on the last timestamp seen (and on ``hs_object_id`` within
that millisecond if a single millisecond holds more than the cap). Search has its own
budget (5 requests/s), so it has its own bucket.

Outcomes: the contacts' ``lifecyclestage``, ``hs_lead_status`` and "became an opportunity/customer
date" properties (``batch/read``, 100 a call), their deals (the v4 associations ``batch/read``, 1,000
contacts a call, each contact's later pages asked for with its ``after``), then those deals'
``dealstage``, ``amount``, ``deal_currency_code``, ``closedate`` and the calculated ``hs_is_closed`` /
``hs_is_closed_won`` flags (``batch/read``, 100 a call). A contact is converted once it reaches the
``opportunity`` lifecycle stage (or ``customer``, ``evangelist``) or has a deal.

Writes are ``batch/update`` calls of up to 100 contacts. HubSpot reports unknown ids per
record (207) but rejects a whole batch for one invalid value (400, e.g. an archived owner);
such a batch is split in halves until the bad records are isolated, so the good ones are
still written and each bad one gets its own fatal result.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import redis
import urllib3
from urllib3.util.retry import Retry

from connectors.base import (
    AckSignal,
    ChangePage,
    ConnectorConfigError,
    ConnectorError,
    CrmRecord,
    CrmUser,
    DomainRecord,
    FatalError,
    Opportunity,
    RetriableError,
    Watermark,
    WriteResult,
)
from connectors.mapping import acknowledged, as_text, evaluate, to_lead
from connectors.ratelimit import RateLimiter
from connectors.settings import Condition, HubSpotSettings
from connectors.support import CrmConnector, LeadOutcome, batches, register_credentials

__all__ = ["HubSpotConnector", "HubSpotCredentials", "filter_groups"]

T = TypeVar("T")
DEFAULT_API_BASE = "https://api.hubapi.com"
ACCOUNT_CHUNK = 50  # domains per companies search (IN filter), well inside one page
BATCH_MAX = 100
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
MODIFIED = "lastmodifieddate"
OWNER = "hubspot_owner_id"
NOTE_TO_CONTACT = 202
ASSOCIATIONS_MAX = 1000  # inputs per associations batch read (HubSpot's limit since February 2025)
CONVERTED_STAGES = ("opportunity", "customer", "evangelist")  # lifecycle stages that mean "converted"
OUTCOME_PROPERTIES = ["lifecyclestage", "hs_lead_status", *(f"hs_lifecyclestage_{s}_date" for s in CONVERTED_STAGES)]
DEAL_PROPERTIES = ["dealname", "dealstage", "pipeline", "amount", "deal_currency_code", "closedate", "createdate",
                   "hs_is_closed", "hs_is_closed_won"]
_ID_RE = re.compile(r"^\d{1,20}$")
RETRIABLE_CATEGORIES = frozenset({"RATE_LIMITS", "INTERNAL_ERROR", "LOCKED", "TIMEOUT", "SERVICE_UNAVAILABLE"})

Filter = dict[str, Any]


# ----------------------------------------------------------------------------- search filters


def _value(value: Any) -> str:
    text = as_text(value) if isinstance(value, bool | int | float) else str(value)
    return text


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _op_alternatives(name: str, op: str, operand: Any) -> list[list[Filter]]:
    """One operator as OR-of-AND filters, matching :mod:`connectors.mapping` (missing reads as "")."""
    has = {"propertyName": name, "operator": "HAS_PROPERTY"}
    hasnt = {"propertyName": name, "operator": "NOT_HAS_PROPERTY"}
    if op == "exists":
        return [[has]] if operand else [[hasnt]]
    if op == "eq":
        return [[hasnt]] if _blank(operand) else [[{"propertyName": name, "operator": "EQ", "value": _value(operand)}]]
    if op == "ne":
        if _blank(operand):
            return [[has]]
        return [[{"propertyName": name, "operator": "NEQ", "value": _value(operand)}], [hasnt]]
    if op in ("in", "not_in"):
        values = [_value(v) for v in operand if not _blank(v)]
        blank = len(values) != len(operand)
        listed = {"propertyName": name, "operator": "IN" if op == "in" else "NOT_IN", "values": values}
        if op == "in":
            return ([[listed]] if values else []) + ([[hasnt]] if blank else [])
        if blank:
            return [[listed, has]] if values else [[has]]
        return [[listed], [hasnt]]
    hs_op = {"gt": "GT", "gte": "GTE", "lt": "LT", "lte": "LTE"}[op]
    return [[{"propertyName": name, "operator": hs_op, "value": _value(operand)}]]


def _and(left: list[list[Filter]], right: list[list[Filter]]) -> list[list[Filter]]:
    return [a + b for a in left for b in right]


def _dnf(condition: Condition) -> list[list[Filter]]:
    if condition.all is not None:
        out: list[list[Filter]] = [[]]
        for child in condition.all:
            out = _and(out, _dnf(child))
            if len(out) > 64:
                raise OverflowError
        return out
    if condition.any is not None:
        return [group for child in condition.any for group in _dnf(child)]
    out = [[]]
    for op, operand in condition.operators().items():
        out = _and(out, _op_alternatives(condition.field or "", op, operand))
    return out


def filter_groups(condition: Condition | None, extra: Sequence[Filter] = ()) -> list[dict[str, Any]] | None:
    """Search ``filterGroups`` for ``condition`` AND ``extra``, or ``None`` if HubSpot's limits
    (5 groups, 6 filters each, 18 in all) cannot hold it: then only ``extra`` is sent and the
    condition is applied to what comes back."""
    if condition is None:
        return [{"filters": list(extra)}] if extra else []
    try:
        groups = [list(extra) + g for g in _dnf(condition)]
    except OverflowError:
        return None
    if not groups:
        return None
    if (len(groups) > MAX_GROUPS or any(len(g) > MAX_FILTERS_PER_GROUP for g in groups)
            or sum(len(g) for g in groups) > MAX_FILTERS):
        return None
    return [{"filters": g} for g in groups]


def parse_hs_datetime(value: Any) -> datetime | None:
    """HubSpot datetimes: ISO 8601 (``2024-05-01T12:00:00.123Z``) or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# ----------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class HubSpotCredentials:
    """Private-app token and where to send it. ``repr`` shows no secret."""

    access_token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        register_credentials(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSpotCredentials:
        """``HUBSPOT_ACCESS_TOKEN`` (required), ``HUBSPOT_API_BASE``, ``LEADROUTE_CA_BUNDLE``."""
        env = os.environ if env is None else env
        token = (env.get("HUBSPOT_ACCESS_TOKEN") or "").strip()
        if not token:
            raise ConnectorConfigError("HUBSPOT_ACCESS_TOKEN is not set (a private app's access token)", crm="hubspot")
        ca_bundle = (env.get("LEADROUTE_CA_BUNDLE") or "").strip() or None
        if ca_bundle and not Path(ca_bundle).is_file():
            raise ConnectorConfigError(f"LEADROUTE_CA_BUNDLE {ca_bundle} is not a file", crm="hubspot")
        base = ((env.get("HUBSPOT_API_BASE") or "").strip() or DEFAULT_API_BASE).rstrip("/")
        return cls(access_token=token, api_base=base, ca_bundle=ca_bundle)


# ----------------------------------------------------------------------------- connector


class HubSpotConnector(CrmConnector):
    """Contacts in one HubSpot portal. See the module docstring for the how and why."""

    name: ClassVar[str] = "hubspot"
    write_batch_max: ClassVar[int] = BATCH_MAX
    settings_class: ClassVar[type[HubSpotSettings]] = HubSpotSettings
    owner_field: ClassVar[str] = OWNER
    owners_endpoint: ClassVar[str] = "contacts/batch/update:owners"
    reasons_endpoint: ClassVar[str] = "contacts/batch/update:reasons"
    rate_bucket: ClassVar[str | None] = "general"  # search has a budget (and a bucket) of its own
    settings: HubSpotSettings
    credentials: HubSpotCredentials

    @classmethod
    def warm_up(cls) -> None:
        """The client's API modules load on first attribute access (a second or so): load them now."""
        from hubspot import HubSpot  # the client takes a second to import: only where it is used

        crm = HubSpot(access_token="warm-up").crm
        _ = (crm.contacts.search_api, crm.contacts.batch_api, crm.owners.owners_api, crm.companies.search_api,
             crm.objects.notes.basic_api, crm.deals.batch_api, crm.deals.search_api, crm.associations.v4.batch_api)

    def __init__(
        self,
        settings: HubSpotSettings,
        credentials: HubSpotCredentials,
        *,
        limiter: RateLimiter | None = None,
        search_limiter: RateLimiter | None = None,
        redis_client: redis.Redis | None = None,
        prefix: str = "leadroute",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from hubspot import HubSpot  # the client takes a second to import: only where it is used

        conn = hashlib.sha1(f"{credentials.api_base}|{credentials.access_token}".encode()).hexdigest()[:12]
        super().__init__(settings, credentials, connection=conn, limiter=limiter, redis_client=redis_client,
                         prefix=prefix, sleep=sleep)
        self.search_limiter = search_limiter or self._bucket(settings.search_rate_limit, "search")
        client = HubSpot(
            access_token=credentials.access_token,
            host=credentials.api_base,
            ssl_ca_cert=credentials.ca_bundle,
            retry=Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False),
        )
        # each discovery property builds a new ApiClient (and connection pool): build each once
        self._contacts_search = client.crm.contacts.search_api
        self._contacts_batch = client.crm.contacts.batch_api
        self._owners = client.crm.owners.owners_api
        self._companies_search = client.crm.companies.search_api
        self._notes = client.crm.objects.notes.basic_api
        self._deals_batch = client.crm.deals.batch_api
        self._deals_search = client.crm.deals.search_api
        self._associations = client.crm.associations.v4.batch_api
        self._apis = [self._contacts_search, self._contacts_batch, self._owners, self._companies_search, self._notes,
                      self._deals_batch, self._deals_search, self._associations]
        self._properties = self._wanted_properties()
        intake = sorted(settings.intake.fields()) if settings.intake is not None else []
        self._change_properties = list(dict.fromkeys([MODIFIED, OWNER, *intake]))

    @classmethod
    def _credentials_from_env(cls, settings: HubSpotSettings, env: Mapping[str, str] | None) -> HubSpotCredentials:
        """``HUBSPOT_*`` environment variables (settings default to contacts)."""
        return HubSpotCredentials.from_env(env)

    def __repr__(self) -> str:
        return f"HubSpotConnector(object='contacts', api={self.credentials.api_base!r})"

    def close(self) -> None:
        """Close pooled connections (urllib3 2's ``PoolManager.clear`` alone leaves them open)."""
        for api in self._apis:
            manager = getattr(api.api_client.rest_client, "pool_manager", None)
            if manager is None:
                continue
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
            manager.clear()

    # ------------------------------------------------------------------ plumbing

    def _wanted_properties(self) -> list[str]:
        s = self.settings
        wanted = [MODIFIED, OWNER, "createdate", *s.fields]
        for cond in (s.intake, s.acknowledged_when, s.closed_when):
            if cond is not None:
                wanted.extend(sorted(cond.fields()))
        if s.reason.field:
            wanted.append(s.reason.field)
        if s.rejection is not None:
            wanted.append(s.rejection.field)
        return list(dict.fromkeys(wanted))

    def _classify(self, exc: BaseException) -> ConnectorError:
        """HTTP status and HubSpot's category -> retriable or fatal, with the rate-limit hint."""
        if isinstance(exc, ConnectorError):
            return exc
        status = getattr(exc, "status", None)
        if status is not None and hasattr(exc, "reason") and type(exc).__name__.endswith("Exception"):
            headers = {str(k).lower(): str(v) for k, v in dict(getattr(exc, "headers", None) or {}).items()}
            body = _json(getattr(exc, "body", None))
            category = str(body.get("category") or body.get("errorType") or "") or None
            message = str(body.get("message") or getattr(exc, "reason", "") or f"HTTP {status}")
            status = int(status)
            self._note_headers(headers)
            if status == 0:
                reason = str(getattr(exc, "reason", ""))
                if "CERTIFICATE" in reason.upper() or "SSL" in reason.upper():
                    return FatalError(f"TLS failure talking to HubSpot (check LEADROUTE_CA_BUNDLE): {reason[:300]}",
                                      crm=self.name, code="TLS", status=0)
                return RetriableError(reason[:300] or "no response", crm=self.name, code="TRANSPORT", status=0)
            if status == 429:
                policy = str(body.get("policyName") or "")
                return RetriableError(message, crm=self.name, code=policy or "RATE_LIMIT", status=429,
                                      retry_after=_rate_limit_wait(headers, policy))
            if status >= 500 or status in (408, 423) or (category or "") in RETRIABLE_CATEGORIES:
                return RetriableError(message, crm=self.name, code=category or str(status), status=status,
                                      retry_after=_retry_after(headers))
            return FatalError(message, crm=self.name, code=category or str(status), status=status)
        if isinstance(exc, urllib3.exceptions.HTTPError):
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, urllib3.exceptions.SSLError):
                return FatalError(f"TLS failure talking to HubSpot (check LEADROUTE_CA_BUNDLE): {reason}", crm=self.name,
                                  code="TLS", status=0)
            return RetriableError(f"{type(exc).__name__}: {reason}", crm=self.name, code="TRANSPORT", status=0)
        if isinstance(exc, ConnectionError | TimeoutError):
            return RetriableError(f"{type(exc).__name__}: {exc}", crm=self.name, code="TRANSPORT", status=0)
        return FatalError(f"{type(exc).__name__}: {exc}", crm=self.name, code="ERROR")

    def _note_headers(self, headers: Mapping[str, str]) -> None:
        daily, remaining = headers.get("x-hubspot-ratelimit-daily"), headers.get("x-hubspot-ratelimit-daily-remaining")
        if daily and remaining and daily.isdigit() and remaining.isdigit():
            self.daily.update(int(daily) - int(remaining), int(daily))

    def _call(self, endpoint: str, fn: Callable[[], tuple[Any, int, Any]], *, search: bool = False) -> Any:
        """One API call with ``_return_http_data_only=False``: paced, retried, headers read."""
        limiter = (self.search_limiter, self.settings.search_rate_limit.rate) if search else (
            self.limiter, self.settings.rate_limit.rate)

        def once() -> Any:
            data, _status, headers = fn()
            self._note_headers({str(k).lower(): str(v) for k, v in dict(headers or {}).items()})
            return data

        return self.runner.call(endpoint, once, limiters=[limiter])

    def _opts(self) -> dict[str, Any]:
        return {"_return_http_data_only": False, "_request_timeout": self._timeout}

    def _search(self, body: dict[str, Any], endpoint: str = "contacts/search") -> Any:
        return self._call(endpoint, lambda: self._contacts_search.do_search_with_http_info(body, **self._opts()),
                          search=True)

    def _record(self, obj: Any, *, lead: bool = True) -> CrmRecord:
        props = dict(obj.properties or {})
        record_id = str(obj.id)
        modstamp = parse_hs_datetime(props.get(MODIFIED)) or parse_hs_datetime(obj.updated_at) or datetime.now(UTC)
        return CrmRecord(
            id=record_id,
            modstamp=modstamp,
            owner_id=props.get(OWNER) or None,
            lead=to_lead(props, self.settings.fields, record_id) if lead else {"id": record_id},
            fields=props,
            needs_routing=evaluate(self.settings.intake, props),
            crm=self.name,
        )

    # ------------------------------------------------------------------ reads

    def changes(self, since: Watermark | None, *, intake_only: bool = True, full: bool = False) -> Iterator[ChangePage]:
        """Contacts by ``lastmodifieddate`` (from ``overlap`` before the watermark), oldest first,
        in search windows of at most 10,000 results."""
        watermark = since or Watermark(datetime.fromtimestamp(0, UTC))
        limit = self.settings.search_page_size
        intake = self.settings.intake if intake_only else None
        anchor = _ms(since.since(self.settings.overlap)) if since is not None else None
        after = 0
        tie: tuple[int, str] | None = None  # (millisecond, last id) when one millisecond overflows a window
        while True:
            if tie is not None:
                extra: list[Filter] = [
                    {"propertyName": MODIFIED, "operator": "EQ", "value": str(tie[0])},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": tie[1]},
                ]
                sort = "hs_object_id"
            else:
                extra = [] if anchor is None else [{"propertyName": MODIFIED, "operator": "GTE", "value": str(anchor)}]
                sort = MODIFIED
            groups = filter_groups(intake, extra)
            if groups is None:
                groups = [{"filters": extra}] if extra else []
            body: dict[str, Any] = {"filterGroups": groups, "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                                    "properties": self._properties if full else self._change_properties, "limit": limit}
            if after:
                body["after"] = str(after)
            page = self._search(body, "contacts/search:changes")
            records = [self._record(obj, lead=full) for obj in page.results or []]
            fresh = [r for r in records if r.key not in watermark.seen and (not intake_only or r.needs_routing)]
            watermark = watermark.advance(records, self.settings.overlap)
            yield ChangePage(fresh, watermark)
            next_after = page.paging.next.after if page.paging and page.paging.next else None
            if next_after is None:
                if tie is None:
                    return
                anchor, after, tie = tie[0] + 1, 0, None  # past the crowded millisecond
                continue
            if int(next_after) < self.settings.search_result_cap:
                after = int(next_after)
                continue
            # the search cap: start a new window where this one ended
            last = records[-1]
            if tie is not None:
                tie, after = (tie[0], last.id), 0
            elif anchor is not None and _ms(last.modstamp) <= anchor:
                tie, after = (anchor, last.id), 0
            else:
                anchor, after = _ms(last.modstamp), 0

    def _batch_read(self, ids: Sequence[str], properties: list[str], endpoint: str, api: Any = None) -> list[Any]:
        """Objects by id (contacts, or what ``api`` reads), ``BATCH_MAX`` a call; missing ones absent."""
        api = api or self._contacts_batch
        valid = list(dict.fromkeys(i for i in ids if _ID_RE.match(i)))
        found: list[Any] = []
        for chunk in batches(valid, BATCH_MAX):
            body = {"inputs": [{"id": i} for i in chunk], "properties": properties}
            data = self._call(endpoint, lambda b=body: api.read_with_http_info(b, **self._opts()))
            found.extend(data.results or [])
        return found

    def fetch(self, ids: Sequence[str]) -> dict[str, CrmRecord]:
        return {r.id: r for r in (self._record(o) for o in self._batch_read(ids, self._properties, "contacts/batch/read"))}

    def read_acks(self, ids: Sequence[str]) -> dict[str, AckSignal]:
        s = self.settings
        props = [MODIFIED, OWNER]
        for cond in (s.acknowledged_when, s.closed_when):
            if cond is not None:
                props.extend(sorted(cond.fields()))
        if s.rejection is not None:
            props.append(s.rejection.field)
        out: dict[str, AckSignal] = {}
        for obj in self._batch_read(ids, list(dict.fromkeys(props)), "contacts/batch/read:acks"):
            values = dict(obj.properties or {})
            record_id = str(obj.id)
            out[record_id] = AckSignal(
                id=record_id,
                acknowledged=acknowledged(s, values),
                closed=s.closed_when is not None and evaluate(s.closed_when, values),
                owner_id=values.get(OWNER) or None,
                modstamp=parse_hs_datetime(values.get(MODIFIED)),
                fields=values,
            )
        return out

    def _lead_outcomes(self, ids: list[str]) -> dict[str, LeadOutcome]:
        """The contacts' lifecycle facts (100 a call), then the deals of all of them (1,000 a call)."""
        contacts = self._batch_read(ids, OUTCOME_PROPERTIES, "contacts/batch/read:outcomes")
        deals = self._associated([str(c.id) for c in contacts], "deals")
        out: dict[str, LeadOutcome] = {}
        for contact in contacts:
            props = dict(contact.properties or {})
            contact_id = str(contact.id)
            deal_ids = tuple(deals.get(contact_id, ()))
            converted = str(props.get("lifecyclestage") or "").lower() in CONVERTED_STAGES or bool(deal_ids)
            reached = [d for d in (parse_hs_datetime(props.get(f"hs_lifecyclestage_{s}_date")) for s in CONVERTED_STAGES)
                       if d is not None]
            out[contact_id] = LeadOutcome(contact_id, converted, min(reached) if converted and reached else None,
                                          deal_ids, props)
        return out

    def _associated(self, ids: list[str], to_type: str) -> dict[str, list[str]]:
        """Ids of the ``to_type`` records associated with each contact (v4 associations batch read,
        ``ASSOCIATIONS_MAX`` contacts a call; a contact with more than a page is asked again with its
        ``after`` in the next round). Contacts with none are absent (HubSpot reports them as errors)."""
        found: dict[str, list[str]] = {}
        pending: list[dict[str, str]] = [{"id": i} for i in ids]
        while pending:
            later: list[dict[str, str]] = []
            for chunk in batches(pending, ASSOCIATIONS_MAX):
                body = {"inputs": chunk}
                data = self._call(f"associations/contacts/{to_type}/batch/read",
                                  lambda b=body: self._associations.get_page_with_http_info("contacts", to_type, b,
                                                                                            **self._opts()))
                for result in data.results or []:
                    source = str(result._from.id)
                    linked = found.setdefault(source, [])
                    linked.extend(str(to.to_object_id) for to in result.to or [] if str(to.to_object_id) not in linked)
                    after = result.paging.next.after if result.paging and result.paging.next else None
                    if after:
                        later.append({"id": source, "after": str(after)})
            pending = later
        return found

    def _opportunities(self, ids: list[str]) -> dict[str, Opportunity]:
        """Deals by id, 100 a call: stage, calculated closed/won flags, amount, currency, dates."""
        out: dict[str, Opportunity] = {}
        for deal in self._batch_read(ids, DEAL_PROPERTIES, "deals/batch/read", api=self._deals_batch):
            props = dict(deal.properties or {})
            stage = props.get("dealstage") or None
            won = _flag(props.get("hs_is_closed_won"), stage == "closedwon")
            closed = _flag(props.get("hs_is_closed"), won or stage == "closedlost")
            out[str(deal.id)] = Opportunity(
                id=str(deal.id),
                created_at=parse_hs_datetime(props.get("createdate")) or parse_hs_datetime(deal.created_at),
                stage=stage,
                is_won=won,
                is_closed=closed,
                closed_at=parse_hs_datetime(props.get("closedate")) if closed else None,
                amount=_number(props.get("amount")),
                currency=props.get("deal_currency_code") or None,
            )
        return out

    def list_owners(self) -> list[CrmUser]:
        """Active owners, then archived ones (inactive): ids are the owners API ``id``s."""
        out: list[CrmUser] = []
        for archived in (False, True):
            after: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": 500, "archived": archived, **self._opts()}
                if after:
                    kwargs["after"] = after
                page = self._call("owners", lambda k=kwargs: self._owners.get_page_with_http_info(**k))
                for owner in page.results or []:
                    name = " ".join(p for p in (owner.first_name, owner.last_name) if p) or (owner.email or "")
                    out.append(CrmUser(id=str(owner.id), name=name, email=owner.email,
                                       active=not archived and not owner.archived))
                after = page.paging.next.after if page.paging and page.paging.next else None
                if not after:
                    break
        return out

    def _company_owner(self, domain: str) -> str | None:
        """Owner of the oldest company whose ``domain`` is ``domain`` (one search)."""
        body = {
            "filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": domain}]}],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "properties": ["domain", OWNER, "createdate"],
            "limit": 10,
        }
        data = self._call("companies/search",
                          lambda: self._companies_search.do_search_with_http_info(body, **self._opts()), search=True)
        return next((str(c.properties[OWNER]) for c in data.results or [] if (c.properties or {}).get(OWNER)), None)

    def _find_account_owners(self, domains: list[str]) -> dict[str, str]:
        """Owners of the oldest company on each domain: one search per ``ACCOUNT_CHUNK`` domains
        (one by one for a single domain, or when a chunk's companies overflow one page)."""
        found: dict[str, str] = {}
        for start in range(0, len(domains), ACCOUNT_CHUNK):
            chunk = domains[start:start + ACCOUNT_CHUNK]
            if len(chunk) > 1:
                body = {
                    "filterGroups": [{"filters": [{"propertyName": "domain", "operator": "IN", "values": chunk}]}],
                    "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
                    "properties": ["domain", OWNER, "createdate"],
                    "limit": 200,
                }
                data = self._call("companies/search",
                                  lambda body=body: self._companies_search.do_search_with_http_info(body, **self._opts()),
                                  search=True)
                if not (data.paging is not None and getattr(data.paging, "next", None)):
                    for company in data.results or []:
                        props = company.properties or {}
                        domain = str(props.get("domain") or "").lower()
                        if domain in chunk and domain not in found and props.get(OWNER):
                            found[domain] = str(props[OWNER])
                    continue
            for domain in chunk:  # a single domain, or crowded domains: one by one
                owner = self._company_owner(domain)
                if owner:
                    found[domain] = owner
        return found

    def open_pipeline(self) -> dict[str, int]:
        """Open deals (``hs_is_closed`` not true) per ``hubspot_owner_id``: one deals search read page by page,
        keyed on ``hs_object_id`` (each page asks for ids above the last one seen), so the search API's
        10,000-result cap never cuts it short."""
        counts: dict[str, int] = {}
        last = "0"
        while True:
            body = {"filterGroups": [{"filters": [
                        {"propertyName": "hs_is_closed", "operator": "NEQ", "value": "true"},
                        {"propertyName": OWNER, "operator": "HAS_PROPERTY"},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": last}]}],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": [OWNER], "limit": self.settings.search_page_size}
            page = self._call("deals/search:pipeline",
                              lambda b=body: self._deals_search.do_search_with_http_info(b, **self._opts()), search=True)
            results = page.results or []
            for deal in results:
                owner = (deal.properties or {}).get(OWNER)
                if owner:
                    counts[str(owner)] = counts.get(str(owner), 0) + 1
            if not results or not (page.paging and page.paging.next):
                return counts
            last = str(results[-1].id)

    def recent_by_domain(self, domains: Sequence[str], since: datetime) -> dict[str, list[DomainRecord]]:
        """Contacts created since ``since`` whose ``hs_email_domain`` is one of ``domains`` (HubSpot's leads
        are contacts): one search per ``ACCOUNT_CHUNK`` domains, newest first, its pages followed."""
        wanted = list(dict.fromkeys(d for d in domains if d))
        found: dict[str, list[DomainRecord]] = {}
        for start in range(0, len(wanted), ACCOUNT_CHUNK):
            chunk = wanted[start : start + ACCOUNT_CHUNK]
            after = 0
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [
                        {"propertyName": "hs_email_domain", "operator": "IN", "values": chunk},
                        {"propertyName": "createdate", "operator": "GTE", "value": str(_ms(since))}]}],
                    "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
                    "properties": ["email", "hs_email_domain", OWNER, "createdate"],
                    "limit": self.settings.search_page_size}
                if after:
                    body["after"] = str(after)
                page = self._search(body, "contacts/search:recent_by_domain")
                for obj in page.results or []:
                    props = obj.properties or {}
                    domain = str(props.get("hs_email_domain") or "").lower()
                    created = parse_hs_datetime(props.get("createdate")) or parse_hs_datetime(obj.created_at)
                    if domain in chunk and created is not None:
                        found.setdefault(domain, []).append(
                            DomainRecord(str(obj.id), "contact", str(props.get(OWNER) or "") or None, created, domain))
                nxt = page.paging.next.after if page.paging and page.paging.next else None
                if nxt is None or int(nxt) >= self.settings.search_result_cap:
                    break
                after = int(nxt)
        for records in found.values():
            records.sort(key=lambda r: (r.created_at, int(r.id) if r.id.isdigit() else 0), reverse=True)
        return found

    # ------------------------------------------------------------------ writes

    def _update(self, inputs: list[dict[str, Any]], endpoint: str) -> dict[str, WriteResult]:
        """One batch/update (split on a whole-batch validation error); results by id."""
        body = {"inputs": inputs}
        try:
            data = self._call(endpoint, lambda: self._contacts_batch.update_with_http_info(body, **self._opts()))
        except ConnectorError as exc:
            if not exc.retriable and exc.status == 400 and len(inputs) > 1:
                middle = len(inputs) // 2
                self.log.info("batch refused as a whole: splitting to isolate the bad records", size=len(inputs),
                              code=exc.code)
                return {**self._update(inputs[:middle], endpoint), **self._update(inputs[middle:], endpoint)}
            return {i["id"]: WriteResult.failure(i["id"], exc) for i in inputs}
        results = {str(r.id): WriteResult.success(str(r.id)) for r in data.results or []}
        for error in getattr(data, "errors", None) or []:
            context = error.context or {}
            ids = [str(x) for key in ("ids", "id") for x in (context.get(key) or [])]
            category = str(error.category or "ERROR")
            for record_id in ids:
                results[record_id] = WriteResult.failure(record_id, retriable=category in RETRIABLE_CATEGORIES,
                                                         code=category, message=str(error.message or ""))
        for item in inputs:  # neither written nor refused: unknown, so try again later
            results.setdefault(item["id"], WriteResult.failure(item["id"], retriable=True, code="NO_RESULT",
                                                               message="not in the batch response"))
        return results

    def _refuse(self, record_id: str) -> WriteResult | None:
        if _ID_RE.match(record_id):
            return None
        return WriteResult.failure(record_id, retriable=False, code="INVALID_ID", message="HubSpot record ids are numeric")

    def _write_batch(self, fields: dict[str, dict[str, Any]], endpoint: str) -> dict[str, WriteResult]:
        return self._update([{"id": i, "properties": p} for i, p in fields.items()], endpoint)

    def _attach_activities(self, results: dict[str, WriteResult], notes: Mapping[str, str]) -> dict[str, WriteResult]:
        """A note on each successfully written contact (one call each: the API has no batch with
        associations we can rely on); a failure becomes a warning, the write stands."""
        out = dict(results)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        for record_id, result in results.items():
            text = notes.get(record_id)
            if not (result.ok and text):
                continue
            body = {
                "properties": {"hs_note_body": text, "hs_timestamp": stamp},
                "associations": [{"to": {"id": record_id}, "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}]}],
            }
            try:
                self._call("notes", lambda b=body: self._notes.create_with_http_info(b, **self._opts()))
            except ConnectorError as exc:
                out[record_id] = WriteResult(result.id, result.status, result.code, result.message,
                                             f"reason note not created: {exc}")
        return out


# ----------------------------------------------------------------------------- helpers


def _json(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return body if isinstance(body, dict) else {}


def _flag(value: Any, default: bool) -> bool:
    """A HubSpot boolean property (``"true"``/``"false"``); ``default`` when the portal did not calculate it."""
    if value is None or value == "":
        return default
    return str(value).strip().lower() == "true"


def _number(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _rate_limit_wait(headers: Mapping[str, str], policy: str) -> float:
    """How long to pause after a 429: Retry-After when sent; else one slot of the policy's window."""
    hinted = _retry_after(headers)
    if hinted is not None:
        return hinted
    if policy == "SECONDLY":
        return 1.0
    if policy == "DAILY":
        return 3600.0
    try:
        interval = float(headers.get("x-hubspot-ratelimit-interval-milliseconds", "10000")) / 1000
    except ValueError:
        interval = 10.0
    return max(1.0, interval / 10)
