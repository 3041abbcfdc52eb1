"""Salesforce through simple-salesforce: SOQL reads, sObject Collections writes, session refresh.

Auth is ours, not simple-salesforce's: its login helpers only talk to
``https://{domain}.salesforce.com`` and re-log in only when built with a password, so we get
the token from ``SALESFORCE_LOGIN_URL``'s OAuth endpoint ourselves (client credentials,
username + password, or JWT bearer), build ``Salesforce(instance_url=..., session_id=...,
session=...)`` on our own ``requests.Session`` (which carries the CA bundle and reads the
``Sforce-Limit-Info`` header of every response), and on ``INVALID_SESSION_ID`` log in again
once and repeat the call.

Outcomes are two SOQL reads per 200 leads at most: the leads' ``IsConverted``, ``ConvertedDate`` and
``ConvertedOpportunityId``, then those Opportunities' ``StageName``, ``IsWon``, ``IsClosed``, ``Amount``
and ``CloseDate`` (and ``CurrencyIsoCode`` in a multi-currency org; a single-currency org's amounts are
in its ``Organization.DefaultCurrencyIsoCode``, read once).

Writes go through ``PATCH composite/sobjects`` (sObject Collections): 200 records a call,
``allOrNone=false`` so one bad record does not sink the batch, and ``Sforce-Auto-Assign:
FALSE`` so the org's native assignment rules do not overwrite the owner we chose. Records
that failed on lock contention are sent again on their own (a smaller collection) before
they are reported.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import redis
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

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
from connectors.domains import domain_of
from connectors.mapping import acknowledged, evaluate, to_lead
from connectors.ratelimit import RateLimiter
from connectors.redact import register_secret
from connectors.settings import Condition, SalesforceSettings
from connectors.support import CrmConnector, LeadOutcome, batches, register_credentials

__all__ = ["SalesforceConnector", "SalesforceCredentials", "soql_condition", "soql_literal"]

T = TypeVar("T")
DEFAULT_API_VERSION = "60.0"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
COLLECTION_MAX = 200
IDS_PER_QUERY = 200
RECENT_ROWS_PER_QUERY = 2000  # one page: the newest records of a chunk of domains are what a relationship wants
ACCOUNT_DOMAINS_PER_QUERY = 50  # LIKE clauses per query: keeps the GET URL well under Salesforce's 16 KB
LEAD_OUTCOME_FIELDS = ("Id", "IsConverted", "ConvertedDate", "ConvertedOpportunityId", "Status")
OPPORTUNITY_FIELDS = ("Id", "StageName", "IsWon", "IsClosed", "Amount", "CloseDate", "CreatedDate")
_UNKNOWN: Any = object()
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?$")
_LIMIT_RE = re.compile(r"api-usage=(\d+)/(\d+)")
RETRIABLE_RECORD_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "QUERY_TIMEOUT"}
)
Flow = Literal["client_credentials", "password", "jwt", "access_token"]


# ----------------------------------------------------------------------------- SOQL rendering


def soql_literal(value: Any) -> str:
    """A SOQL literal: quoted, escaped text; bare numbers, booleans, null and ISO dates."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return soql_datetime(value)
    text = str(value)
    if _DATE_RE.match(text):
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def soql_datetime(when: datetime) -> str:
    """UTC, whole seconds (rounded down: a read window may only grow)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _soql_test(name: str, op: str, operand: Any) -> str:
    if op in ("eq", "ne"):
        if _blank(operand):
            return f"{name} {'=' if op == 'eq' else '!='} null"
        return f"{name} {'=' if op == 'eq' else '!='} {soql_literal(operand)}"
    if op in ("in", "not_in"):
        values = [v for v in operand if not _blank(v)]
        has_blank = len(values) != len(operand)
        listed = ", ".join(soql_literal(v) for v in values)
        if op == "in":
            if not values:
                return f"{name} = null"
            return f"({name} IN ({listed}) OR {name} = null)" if has_blank else f"{name} IN ({listed})"
        if not values:
            return f"{name} != null"
        # SOQL's NOT IN matches null, as our "missing reads as ''" does, unless '' is excluded too
        return f"({name} NOT IN ({listed}) AND {name} != null)" if has_blank else f"{name} NOT IN ({listed})"
    if op == "exists":
        return f"{name} {'!=' if operand else '='} null"
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return f"{name} {symbol} {soql_literal(operand)}"


def soql_condition(condition: Condition) -> str:
    """The SOQL WHERE clause for a condition (parenthesised: SOQL forbids mixing AND/OR bare)."""
    if condition.all is not None:
        return "(" + " AND ".join(soql_condition(c) for c in condition.all) + ")"
    if condition.any is not None:
        return "(" + " OR ".join(soql_condition(c) for c in condition.any) + ")"
    parts = [_soql_test(condition.field or "", op, operand) for op, operand in condition.operators().items()]
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def parse_sf_date(value: Any) -> datetime | None:
    """A Salesforce date (``2024-05-01``, no time) as midnight UTC."""
    if not value:
        return None
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _amount(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def parse_sf_datetime(value: Any) -> datetime | None:
    """``2024-05-01T12:00:00.000+0000`` (Salesforce's format) or any ISO variant."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------- credentials


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True)
class SalesforceCredentials:
    """How to get a session, from the environment. ``repr`` shows no secret."""

    flow: Flow
    login_url: str
    instance_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    audience: str | None = None
    access_token: str | None = field(default=None, repr=False)
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        register_credentials(self)
        if self.password and self.security_token:
            register_secret(self.password + self.security_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, api_version: str | None = None) -> SalesforceCredentials:
        """Read the ``SALESFORCE_*`` variables; the flow is ``SALESFORCE_AUTH_FLOW`` or inferred.

        Inference: a private key file means JWT bearer; a username and password mean the
        username-password flow; a client id and secret mean client credentials; an access
        token with an instance URL is used as is (it cannot be refreshed).
        """
        env = os.environ if env is None else env
        get = lambda name: _env(env, name)  # noqa: E731
        flow = get("SALESFORCE_AUTH_FLOW")
        if flow is None:
            if get("SALESFORCE_PRIVATE_KEY_FILE"):
                flow = "jwt"
            elif get("SALESFORCE_USERNAME") and get("SALESFORCE_PASSWORD"):
                flow = "password"
            elif get("SALESFORCE_CLIENT_ID") and get("SALESFORCE_CLIENT_SECRET"):
                flow = "client_credentials"
            elif get("SALESFORCE_ACCESS_TOKEN"):
                flow = "access_token"
            else:
                raise ConnectorConfigError(
                    "no Salesforce credentials in the environment: set SALESFORCE_CLIENT_ID and "
                    "SALESFORCE_CLIENT_SECRET (client credentials), or also SALESFORCE_USERNAME, SALESFORCE_PASSWORD "
                    "and SALESFORCE_SECURITY_TOKEN (password flow), or SALESFORCE_CONSUMER_KEY, SALESFORCE_USERNAME "
                    "and SALESFORCE_PRIVATE_KEY_FILE (JWT bearer)",
                    crm="salesforce",
                )
        required: dict[str, tuple[str, ...]] = {
            "client_credentials": ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"),
            "password": ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET", "SALESFORCE_USERNAME", "SALESFORCE_PASSWORD"),
            "jwt": ("SALESFORCE_USERNAME", "SALESFORCE_PRIVATE_KEY_FILE"),
            "access_token": ("SALESFORCE_ACCESS_TOKEN", "SALESFORCE_INSTANCE_URL"),
        }
        if flow not in required:
            raise ConnectorConfigError(
                f"SALESFORCE_AUTH_FLOW={flow!r} is not one of {', '.join(required)}", crm="salesforce"
            )
        missing = [name for name in required[flow] if not get(name)]
        if flow == "jwt" and not (get("SALESFORCE_CONSUMER_KEY") or get("SALESFORCE_CLIENT_ID")):
            missing.append("SALESFORCE_CONSUMER_KEY")
        if missing:
            raise ConnectorConfigError(f"Salesforce {flow} flow needs {', '.join(missing)}", crm="salesforce")
        key_file = get("SALESFORCE_PRIVATE_KEY_FILE")
        if flow == "jwt" and key_file and not Path(key_file).is_file():
            raise ConnectorConfigError(f"SALESFORCE_PRIVATE_KEY_FILE {key_file} is not a readable file", crm="salesforce")
        ca_bundle = get("LEADROUTE_CA_BUNDLE")
        if ca_bundle and not Path(ca_bundle).is_file():
            raise ConnectorConfigError(f"LEADROUTE_CA_BUNDLE {ca_bundle} is not a file", crm="salesforce")
        login_url = (get("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL).rstrip("/")
        return cls(
            flow=flow,  # type: ignore[arg-type]
            login_url=login_url,
            instance_url=(get("SALESFORCE_INSTANCE_URL") or "").rstrip("/") or None,
            client_id=get("SALESFORCE_CONSUMER_KEY") if flow == "jwt" and get("SALESFORCE_CONSUMER_KEY")
            else get("SALESFORCE_CLIENT_ID"),
            client_secret=get("SALESFORCE_CLIENT_SECRET"),
            username=get("SALESFORCE_USERNAME"),
            password=get("SALESFORCE_PASSWORD"),
            security_token=get("SALESFORCE_SECURITY_TOKEN") or "",
            private_key_file=key_file,
            audience=get("SALESFORCE_JWT_AUDIENCE") or login_url,
            access_token=get("SALESFORCE_ACCESS_TOKEN"),
            api_version=get("SALESFORCE_API_VERSION") or api_version or DEFAULT_API_VERSION,
            ca_bundle=ca_bundle,
        )

    def token_request(self) -> dict[str, str]:
        """The OAuth token endpoint's form for this flow (contains secrets: never log it)."""
        if self.flow == "client_credentials":
            return {"grant_type": "client_credentials", "client_id": self.client_id or "",
                    "client_secret": self.client_secret or ""}
        if self.flow == "password":
            return {"grant_type": "password", "client_id": self.client_id or "", "client_secret": self.client_secret or "",
                    "username": self.username or "", "password": (self.password or "") + (self.security_token or "")}
        if self.flow == "jwt":
            return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.jwt_assertion()}
        raise ConnectorConfigError("an access token cannot be refreshed", crm="salesforce")

    def jwt_assertion(self, now: float | None = None) -> str:
        """The signed JWT (RS256) for the bearer flow: iss = consumer key, sub = user, aud = login URL."""
        import jwt  # PyJWT and its crypto backend load only for the JWT bearer flow

        try:
            key = Path(self.private_key_file or "").read_text()
        except OSError as exc:
            raise ConnectorConfigError(f"cannot read SALESFORCE_PRIVATE_KEY_FILE: {exc}", crm="salesforce") from None
        issued = int(now if now is not None else time.time())
        claims = {"iss": self.client_id, "sub": self.username, "aud": self.audience, "exp": issued + 180}
        try:
            token = jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConnectorConfigError(f"cannot sign the JWT with SALESFORCE_PRIVATE_KEY_FILE: {exc}",
                                       crm="salesforce") from None
        register_secret(token)
        return token


# ----------------------------------------------------------------------------- connector


class SalesforceConnector(CrmConnector):
    """Leads (or Contacts) in one Salesforce org. See the module docstring for the how and why."""

    name: ClassVar[str] = "salesforce"
    write_batch_max: ClassVar[int] = COLLECTION_MAX
    settings_class: ClassVar[type[SalesforceSettings]] = SalesforceSettings
    owner_field: ClassVar[str] = "OwnerId"
    owners_endpoint: ClassVar[str] = "composite:owners"
    reasons_endpoint: ClassVar[str] = "composite:reasons"
    settings: SalesforceSettings
    credentials: SalesforceCredentials

    def __init__(
        self,
        settings: SalesforceSettings,
        credentials: SalesforceCredentials,
        *,
        limiter: RateLimiter | None = None,
        redis_client: redis.Redis | None = None,
        prefix: str = "leadroute",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        mode = "ac" if settings.account_lookup.contacts else "a"  # answers differ by lookup mode: never share them
        super().__init__(settings, credentials, connection=_connection_id(credentials), limiter=limiter,
                         redis_client=redis_client, prefix=prefix, sleep=sleep, account_scope=f":{mode}")
        self.object = settings.object
        self._http = _Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=8, max_retries=0)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)
        if credentials.ca_bundle:
            self._http.verify = credentials.ca_bundle
        self._http.hooks["response"].append(self._on_response)
        self._sf: Salesforce | None = None
        self._login_lock = threading.Lock()
        self.logins = 0
        self._retry_hint: float | None = None
        self._select = self._select_fields()
        self._multi_currency: bool | None = None  # learnt from the first Opportunity read
        self._org_currency: Any = _UNKNOWN  # a single-currency org's currency, read once when needed
        intake = sorted(settings.intake.fields()) if settings.intake is not None else []
        self._change_select = list({f.lower(): f for f in ["Id", "SystemModstamp", "OwnerId", *intake]}.values())

    @classmethod
    def _credentials_from_env(cls, settings: SalesforceSettings, env: Mapping[str, str] | None) -> SalesforceCredentials:
        """``SALESFORCE_*`` environment variables (settings default to Lead)."""
        return SalesforceCredentials.from_env(env, settings.api_version)

    def __repr__(self) -> str:
        creds = self.credentials
        return f"SalesforceConnector(object={self.object!r}, flow={creds.flow!r}, login={creds.login_url!r})"

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing

    def _select_fields(self) -> list[str]:
        s = self.settings
        wanted = ["Id", "SystemModstamp", "OwnerId", *s.fields]
        for cond in (s.intake, s.acknowledged_when, s.closed_when):
            if cond is not None:
                wanted.extend(sorted(cond.fields()))
        if s.rejection is not None:
            wanted.append(s.rejection.field)
        out: list[str] = []
        seen: set[str] = set()
        for name in wanted:
            if name.lower() not in seen:
                seen.add(name.lower())
                out.append(name)
        return out

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Every response: remember a Retry-After (simple-salesforce's errors drop headers) and
        read the daily usage."""
        if response.status_code in (429, 503):
            try:
                self._retry_hint = float(response.headers.get("Retry-After", ""))
            except ValueError:
                self._retry_hint = None
        info = response.headers.get("Sforce-Limit-Info")
        if info:
            match = _LIMIT_RE.search(info)
            if match:
                self.daily.update(int(match.group(1)), int(match.group(2)))

    def _login(self) -> Salesforce:
        """Get a fresh session from the token endpoint (or the given access token)."""
        creds = self.credentials
        if creds.flow == "access_token":
            token, instance = creds.access_token or "", creds.instance_url or ""
        else:
            url = f"{creds.login_url}/services/oauth2/token"

            def post() -> requests.Response:
                return self._http.post(url, data=creds.token_request(), timeout=self._timeout)

            response = self.runner.call("oauth2/token", post)
            status = response.status_code
            if status >= 500 or status in (408, 429):
                hint = response.headers.get("Retry-After", "")
                raise RetriableError(f"token endpoint answered {status}", crm=self.name, status=status, code="LOGIN",
                                     retry_after=float(hint) if hint.replace(".", "", 1).isdigit() else None)
            try:
                body = response.json()
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                code, message = _sf_error(body)
                body = {"error": code, "error_description": message}
            if status != 200 or "access_token" not in body:
                reason = body.get("error_description") or body.get("error") or response.text[:200]
                raise FatalError(f"Salesforce login ({creds.flow}) refused: {reason}", crm=self.name,
                                 status=status, code=str(body.get("error") or "LOGIN_FAILED"))
            token = str(body["access_token"])
            instance = str(body.get("instance_url") or creds.instance_url or "")
            if not instance:
                raise FatalError("token response has no instance_url; set SALESFORCE_INSTANCE_URL", crm=self.name)
        register_secret(token)
        self.logins += 1
        version = creds.api_version
        return Salesforce(instance_url=instance, session_id=token, session=self._http, version=version)

    def _session(self, stale: Salesforce | None = None) -> Salesforce:
        with self._login_lock:
            if self._sf is None or self._sf is stale:
                self._sf = self._login()
            return self._sf

    def _classify(self, exc: BaseException) -> ConnectorError:
        """Split failures into retriable and fatal, keeping Salesforce's error code."""
        if isinstance(exc, ConnectorError):
            return exc
        if isinstance(exc, SalesforceError):
            code, message = _sf_error(exc.content)
            status = int(exc.status)
            if isinstance(exc, SalesforceExpiredSession):
                return RetriableError(message or "session expired", crm=self.name, code=code or "INVALID_SESSION_ID",
                                      status=status)
            if isinstance(exc, SalesforceRefusedRequest) and code == "REQUEST_LIMIT_EXCEEDED":
                # the daily allocation is used up: hand back to the worker, do not hammer the org
                return RetriableError(message, crm=self.name, code=code, status=status, retry_after=3600.0)
            if isinstance(exc, SalesforceMalformedRequest | SalesforceRefusedRequest | SalesforceResourceNotFound):
                return FatalError(message, crm=self.name, code=code, status=status)
            if status >= 500 or status in (408, 420, 429):
                hint, self._retry_hint = self._retry_hint, None
                return RetriableError(message or f"HTTP {status}", crm=self.name, code=code, status=status,
                                      retry_after=hint if status in (429, 503) else None)
            return FatalError(message or f"HTTP {status}", crm=self.name, code=code, status=status)
        if isinstance(exc, requests.exceptions.SSLError):
            return FatalError(f"TLS failure talking to Salesforce (check LEADROUTE_CA_BUNDLE): {exc}", crm=self.name,
                              code="TLS", status=0)
        if isinstance(exc, requests.exceptions.RequestException | ConnectionError | TimeoutError):
            return RetriableError(f"{type(exc).__name__}: {exc}", crm=self.name, code="TRANSPORT", status=0)
        if isinstance(exc, ValueError):  # a body that is not JSON: a proxy or maintenance page
            return RetriableError(f"unreadable response: {exc}", crm=self.name, code="BAD_RESPONSE", status=0)
        return FatalError(f"{type(exc).__name__}: {exc}", crm=self.name, code="ERROR")

    def _api(self, endpoint: str, fn: Callable[[Salesforce], T]) -> T:
        """One API call, paced and retried; an expired session is refreshed once and the call repeated."""
        limiters = [(self.limiter, self.settings.rate_limit.rate)]

        def once() -> T:
            sf = self._session()
            try:
                return fn(sf)
            except SalesforceExpiredSession:
                if self.credentials.flow == "access_token":
                    raise FatalError("session expired and SALESFORCE_ACCESS_TOKEN cannot be refreshed; configure an "
                                     "OAuth flow", crm=self.name, code="INVALID_SESSION_ID", status=401) from None
                self.log.info("salesforce session expired: logging in again", endpoint=endpoint)
                fresh = self._session(stale=sf)
                self.runner.pace(limiters)
                try:
                    return fn(fresh)
                except SalesforceExpiredSession as exc:
                    raise RetriableError("session expired again right after a refresh", crm=self.name,
                                         code="INVALID_SESSION_ID", status=int(exc.status)) from None

        return self.runner.call(endpoint, once, limiters=limiters)

    def _query_pages(self, soql: str, endpoint: str = "query") -> Iterator[list[dict[str, Any]]]:
        """``query_all_iter``-style paging, each page its own retried call."""
        headers = {"Sforce-Query-Options": f"batchSize={self.settings.query_batch_size}"}
        result = self._api(endpoint, lambda sf: sf.query(soql, headers=headers, timeout=self._timeout))
        while True:
            yield [_strip(r) for r in result.get("records", [])]
            if result.get("done", True) or not result.get("nextRecordsUrl"):
                return
            next_url = result["nextRecordsUrl"]
            result = self._api(endpoint, lambda sf, u=next_url: sf.query_more(u, identifier_is_url=True, headers=headers,
                                                                              timeout=self._timeout))

    def _query(self, soql: str, endpoint: str = "query") -> list[dict[str, Any]]:
        return [r for page in self._query_pages(soql, endpoint) for r in page]

    def _record(self, raw: dict[str, Any], *, lead: bool = True) -> CrmRecord:
        record_id = str(raw.get("Id"))
        return CrmRecord(
            id=record_id,
            modstamp=parse_sf_datetime(raw.get("SystemModstamp")) or datetime.now(UTC),
            owner_id=raw.get("OwnerId") or None,
            lead=to_lead(raw, self.settings.fields, record_id) if lead else {"id": record_id},
            fields=raw,
            needs_routing=evaluate(self.settings.intake, raw),
            crm=self.name,
        )

    # ------------------------------------------------------------------ reads

    def changes(self, since: Watermark | None, *, intake_only: bool = True, full: bool = False) -> Iterator[ChangePage]:
        """Changed records by ``SystemModstamp`` (from ``overlap`` before the watermark), oldest first."""
        where: list[str] = []
        watermark = since or Watermark(datetime.fromtimestamp(0, UTC))
        if since is not None:
            where.append(f"SystemModstamp >= {soql_datetime(since.since(self.settings.overlap))}")
        if intake_only and self.settings.intake is not None:
            where.append(soql_condition(self.settings.intake))
        soql = f"SELECT {', '.join(self._select if full else self._change_select)} FROM {self.object}"
        if where:
            soql += " WHERE " + " AND ".join(where)
        soql += " ORDER BY SystemModstamp ASC, Id ASC"
        for page in self._query_pages(soql, endpoint="query:changes"):
            records = [self._record(raw, lead=full) for raw in page]
            fresh = [r for r in records if r.key not in watermark.seen and (not intake_only or r.needs_routing)]
            watermark = watermark.advance(records, self.settings.overlap)
            yield ChangePage(fresh, watermark)

    def user_owned(self, record: CrmRecord) -> bool:
        """A user owns it: Salesforce user ids start ``005`` (queues ``00G``)."""
        return bool(record.owner_id) and str(record.owner_id).startswith("005")

    def _by_ids(self, ids: Sequence[str], fields: Sequence[str], endpoint: str, sobject: str | None = None
                ) -> list[dict[str, Any]]:
        """Records of ``sobject`` (the configured object by default) by id, ``IDS_PER_QUERY`` ids a query."""
        valid = list(dict.fromkeys(i for i in ids if _ID_RE.match(i)))
        rows: list[dict[str, Any]] = []
        for chunk in batches(valid, IDS_PER_QUERY):
            rows.extend(self._query(self._by_ids_soql(chunk, fields, sobject or self.object), endpoint))
        return rows

    @staticmethod
    def _by_ids_soql(ids: Sequence[str], fields: Sequence[str], sobject: str) -> str:
        listed = ", ".join(soql_literal(i) for i in ids)
        return f"SELECT {', '.join(fields)} FROM {sobject} WHERE Id IN ({listed})"

    def fetch(self, ids: Sequence[str]) -> dict[str, CrmRecord]:
        out: dict[str, CrmRecord] = {}
        for raw in self._by_ids(ids, self._select, "query:fetch"):
            record = self._record(raw)
            out[record.id] = record
        return _match_requested(ids, out)

    def read_acks(self, ids: Sequence[str]) -> dict[str, AckSignal]:
        s = self.settings
        fields = ["Id", "SystemModstamp", "OwnerId"]
        for cond in (s.acknowledged_when, s.closed_when):
            if cond is not None:
                fields.extend(f for f in sorted(cond.fields()) if f.lower() not in {x.lower() for x in fields})
        if s.rejection is not None and s.rejection.field.lower() not in {x.lower() for x in fields}:
            fields.append(s.rejection.field)
        out: dict[str, AckSignal] = {}
        for raw in self._by_ids(ids, fields, "query:acks"):
            record_id = str(raw["Id"])
            out[record_id] = AckSignal(
                id=record_id,
                acknowledged=acknowledged(s, raw),
                closed=s.closed_when is not None and evaluate(s.closed_when, raw),
                owner_id=raw.get("OwnerId") or None,
                modstamp=parse_sf_datetime(raw.get("SystemModstamp")),
                fields=raw,
            )
        return _match_requested(ids, out)

    def _lead_outcomes(self, ids: list[str]) -> dict[str, LeadOutcome]:
        """One query per 200 leads for their conversion fields. A Contact (``object: Contact``) is never
        converted: it reads back as open (opportunities through contact roles are not read)."""
        out: dict[str, LeadOutcome] = {}
        if self.object != "Lead":
            for raw in self._by_ids(ids, ["Id"], "query:outcomes"):
                out[str(raw["Id"])] = LeadOutcome(str(raw["Id"]), converted=False, fields=raw)
            return _as_asked(ids, out)
        for raw in self._by_ids(ids, LEAD_OUTCOME_FIELDS, "query:outcomes"):
            opportunity = raw.get("ConvertedOpportunityId")
            out[str(raw["Id"])] = LeadOutcome(
                str(raw["Id"]), converted=bool(raw.get("IsConverted")), converted_at=parse_sf_date(raw.get("ConvertedDate")),
                opportunity_ids=(str(opportunity),) if opportunity else (), fields=raw)
        return _as_asked(ids, out)

    def _opportunities(self, ids: list[str]) -> dict[str, Opportunity]:
        """One query per 200 Opportunities (``CurrencyIsoCode`` too, unless the org has a single currency)."""
        out: dict[str, Opportunity] = {}
        for chunk in batches([i for i in ids if _ID_RE.match(i)], IDS_PER_QUERY):
            for raw in self._opportunity_rows(chunk):
                currency = raw.get("CurrencyIsoCode") if self._multi_currency else self._single_currency()
                out[str(raw["Id"])] = Opportunity(
                    id=str(raw["Id"]),
                    created_at=parse_sf_datetime(raw.get("CreatedDate")),
                    stage=raw.get("StageName"),
                    is_won=bool(raw.get("IsWon")),
                    is_closed=bool(raw.get("IsClosed")),
                    closed_at=parse_sf_date(raw.get("CloseDate")) if raw.get("IsClosed") else None,
                    amount=_amount(raw.get("Amount")),
                    currency=str(currency) if currency else None,
                )
        return out

    def _opportunity_rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """Opportunities by id. ``CurrencyIsoCode`` exists only in multi-currency orgs: the first read asks
        for it and, refused, learns the org has one currency and asks again without it."""
        probing = self._multi_currency is not False
        fields = [*OPPORTUNITY_FIELDS, "CurrencyIsoCode"] if probing else list(OPPORTUNITY_FIELDS)
        try:
            rows = self._query(self._by_ids_soql(ids, fields, "Opportunity"), "query:opportunities")
        except FatalError as exc:
            if self._multi_currency is None and exc.code == "INVALID_FIELD" and "CurrencyIsoCode" in exc.message:
                self._multi_currency = False
                self.log.info("single-currency org: opportunity amounts are in the org's currency")
                return self._opportunity_rows(ids)
            raise
        self._multi_currency = probing
        return rows

    def _single_currency(self) -> str | None:
        """The org's currency (``Organization.DefaultCurrencyIsoCode``), read once; ``None`` if unreadable."""
        if self._org_currency is _UNKNOWN:
            try:
                rows = self._query("SELECT DefaultCurrencyIsoCode FROM Organization", "query:organization")
            except FatalError as exc:
                self.log.warning("could not read the org's currency", error=str(exc))
                rows = []
            self._org_currency = (rows[0].get("DefaultCurrencyIsoCode") or None) if rows else None
        return self._org_currency  # type: ignore[no-any-return]

    def list_owners(self) -> list[CrmUser]:
        users = [
            CrmUser(id=r["Id"], name=r.get("Name") or "", email=r.get("Email"), active=bool(r.get("IsActive")))
            for r in self._query("SELECT Id, Name, Email, IsActive FROM User ORDER BY Name", "query:users")
        ]
        try:
            rows = self._query("SELECT Id, Name, Email FROM Group WHERE Type = 'Queue' ORDER BY Name", "query:queues")
        except FatalError as exc:  # e.g. no permission to read Group: users are still worth having
            self.log.warning("could not list queues", error=str(exc))
            rows = []
        queues = [CrmUser(id=r["Id"], name=r.get("Name") or "", email=r.get("Email"), active=True, kind="queue")
                  for r in rows]
        return users + queues

    def _find_account_owners(self, domains: list[str]) -> dict[str, str]:
        """Owner of the oldest Account whose Website is on each domain (else, if configured, of the
        Account of the oldest Contact with an email on it): ``ACCOUNT_DOMAINS_PER_QUERY`` domains
        a query, plus one on Contacts for the rest when configured."""
        found: dict[str, str] = {}
        for start in range(0, len(domains), ACCOUNT_DOMAINS_PER_QUERY):
            chunk = set(domains[start : start + ACCOUNT_DOMAINS_PER_QUERY])
            likes = " OR ".join(f"Website LIKE {soql_literal(f'%{d}%')}" for d in sorted(chunk))
            for row in self._query(f"SELECT Id, OwnerId, Website FROM Account WHERE {likes} "
                                   "ORDER BY CreatedDate ASC, Id ASC", "query:accounts"):
                domain = domain_of(website=row.get("Website"))
                if domain in chunk and domain not in found and row.get("OwnerId"):
                    found[domain] = str(row["OwnerId"])
        if self.settings.account_lookup.contacts:
            rest = [d for d in domains if d not in found]
            for start in range(0, len(rest), ACCOUNT_DOMAINS_PER_QUERY):
                chunk = set(rest[start : start + ACCOUNT_DOMAINS_PER_QUERY])
                likes = " OR ".join(f"Email LIKE {soql_literal(f'%@{d}')}" for d in sorted(chunk))
                for row in self._query(f"SELECT Email, Account.OwnerId FROM Contact WHERE AccountId != null AND "
                                       f"({likes}) ORDER BY CreatedDate ASC, Id ASC", "query:accounts"):
                    domain = str(row.get("Email") or "").rpartition("@")[2].strip().lower()
                    account = row.get("Account")
                    if domain in chunk and domain not in found and isinstance(account, dict) and account.get("OwnerId"):
                        found[domain] = str(account["OwnerId"])
        return found

    def open_pipeline(self) -> dict[str, int]:
        """Open Opportunities per ``OwnerId``: one query over ``IsClosed = false``, read page by page and summed
        here. (``GROUP BY OwnerId`` would return fewer rows, but aggregate results cannot be paged with
        ``queryMore`` and stop at 2,000 groups; the plain query pages like every other read.)"""
        counts: dict[str, int] = {}
        for page in self._query_pages("SELECT OwnerId FROM Opportunity WHERE IsClosed = false", "query:pipeline"):
            for row in page:
                owner = row.get("OwnerId")
                if owner:
                    counts[str(owner)] = counts.get(str(owner), 0) + 1
        return counts

    def recent_by_domain(self, domains: Sequence[str], since: datetime) -> dict[str, list[DomainRecord]]:
        """Unconverted Leads owned by users (by Email or Website) and Contacts (by Email) created since ``since``:
        two queries per ``ACCOUNT_DOMAINS_PER_QUERY`` domains, each the newest ``RECENT_ROWS_PER_QUERY``."""
        wanted = list(dict.fromkeys(d for d in domains if d))
        found: dict[str, list[DomainRecord]] = {}
        after = soql_datetime(since)
        for start in range(0, len(wanted), ACCOUNT_DOMAINS_PER_QUERY):
            chunk = set(wanted[start : start + ACCOUNT_DOMAINS_PER_QUERY])
            emails = [f"Email LIKE {soql_literal(f'%@{d}')}" for d in sorted(chunk)]
            sites = [f"Website LIKE {soql_literal(f'%{d}%')}" for d in sorted(chunk)]
            queries = (
                # Owner.Type (the polymorphic owner's Name type: User or Queue) keeps queue-owned leads, nobody
                # to route to, from taking rows of the page; LIKE cannot test OwnerId (text fields only)
                ("lead", f"SELECT Id, OwnerId, Email, Website, CreatedDate FROM Lead WHERE IsConverted = false AND "
                         f"Owner.Type = 'User' AND CreatedDate >= {after} AND ({' OR '.join(emails + sites)})"),
                ("contact", f"SELECT Id, OwnerId, Email, CreatedDate FROM Contact WHERE CreatedDate >= {after} AND "
                            f"({' OR '.join(emails)})"),
            )
            for kind, soql in queries:
                rows = next(self._query_pages(f"{soql} ORDER BY CreatedDate DESC, Id DESC LIMIT {RECENT_ROWS_PER_QUERY}",
                                              "query:recent_by_domain"), [])
                for row in rows:
                    domain = domain_of(row.get("Email"), row.get("Website"))
                    created = parse_sf_datetime(row.get("CreatedDate"))
                    if domain in chunk and created is not None:
                        found.setdefault(domain, []).append(
                            DomainRecord(str(row["Id"]), kind, row.get("OwnerId") or None, created, domain))
        for records in found.values():
            records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found

    # ------------------------------------------------------------------ writes

    def _collection(self, method: str, records: list[dict[str, Any]], endpoint: str) -> list[dict[str, Any]]:
        body = {"allOrNone": False, "records": records}
        headers = {"Sforce-Auto-Assign": "FALSE"}
        result = self._api(
            endpoint,
            lambda sf: sf.restful("composite/sobjects", method=method, json=body, headers=headers, timeout=self._timeout),
        )
        return list(result or [])

    def _write_batch(self, fields: dict[str, dict[str, Any]], endpoint: str) -> dict[str, WriteResult]:
        """One collection PATCH; records that failed on lock contention are sent again on their own."""
        payloads = [self._payload(record_id, **values) for record_id, values in fields.items()]
        results: dict[int, WriteResult] = {}
        indexes = list(range(len(payloads)))
        attempt = 1
        while indexes:
            batch = [payloads[i] for i in indexes]
            try:
                answers = self._collection("PATCH", batch, endpoint)
            except ConnectorError as exc:
                for i in indexes:
                    results[i] = WriteResult.failure(payloads[i]["id"], exc)
                break
            retry: list[int] = []
            for pos, i in enumerate(indexes):
                answer = answers[pos] if pos < len(answers) else None
                results[i], again = _record_result(payloads[i]["id"], answer)
                if again:
                    retry.append(i)
            if not retry or attempt >= self.settings.retry.lock_attempts:
                break
            attempt += 1
            self.log.info("retrying records that failed on lock contention", count=len(retry), attempt=attempt)
            self._sleep(self.runner.backoff(attempt - 1))
            indexes = retry
        return {payloads[i]["id"]: results[i] for i in range(len(payloads))}

    def _payload(self, record_id: str, **fields: Any) -> dict[str, Any]:
        return {"attributes": {"type": self.object}, "id": record_id, **fields}

    def _attach_activities(self, results: dict[str, WriteResult], notes: Mapping[str, str]) -> dict[str, WriteResult]:
        """Create a completed Task per successfully written record; a failure becomes a warning."""
        targets = [r.id for r in results.values() if r.ok and notes.get(r.id)]
        if not targets:
            return results
        subject = self.settings.reason.subject
        tasks = [
            {"attributes": {"type": "Task"}, "WhoId": i, "Subject": subject, "Description": notes[i],
             "Status": "Completed", "Priority": "Normal"}
            for i in targets
        ]
        warnings: dict[str, str] = {}
        for start in range(0, len(tasks), COLLECTION_MAX):
            chunk = tasks[start : start + COLLECTION_MAX]
            try:
                answers = self._collection("POST", chunk, "composite:tasks")
            except ConnectorError as exc:
                warnings.update({t["WhoId"]: f"reason Task not created: {exc}" for t in chunk})
                continue
            for pos, task in enumerate(chunk):
                answer = answers[pos] if pos < len(answers) else None
                if not (answer and answer.get("success")):
                    code, message = _first_error(answer)
                    warnings[task["WhoId"]] = f"reason Task not created: {code}: {message}"
        if warnings:
            self.log.warning("routing reason Tasks not created", count=len(warnings))
        return {
            i: WriteResult(r.id, r.status, r.code, r.message, warnings[i]) if i in warnings else r
            for i, r in results.items()
        }


# ----------------------------------------------------------------------------- helpers


class _Session(requests.Session):
    """A session whose CA bundle wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    requests lets those variables override ``session.verify`` (they are commonly set to the
    system store); the sandbox's throwaway CA would then never be trusted. Proxies from the
    environment still apply.
    """

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


def _connection_id(credentials: SalesforceCredentials) -> str:
    """The bucket is per org connection: login host + client id (or instance for raw tokens)."""
    basis = f"{credentials.login_url}|{credentials.client_id or credentials.instance_url or ''}"
    return hashlib.sha1(basis.encode()).hexdigest()[:12]


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``attributes`` entries from a record just parsed (in place: it is ours alone)."""
    record.pop("attributes", None)
    for value in record.values():
        if type(value) is dict:
            _strip(value)
    return record


def _sf_error(content: Any) -> tuple[str | None, str]:
    """Salesforce's error body: a list of ``{message, errorCode}``; or OAuth's ``{error, ...}``."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return first.get("errorCode") or first.get("statusCode"), str(first.get("message") or "")
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error"), str(content.get("message")
                                                                     or content.get("error_description") or "")
    return None, str(content or "")[:500]


def _first_error(answer: Mapping[str, Any] | None) -> tuple[str, str]:
    errors = (answer or {}).get("errors") or []
    if errors and isinstance(errors[0], dict):
        return str(errors[0].get("statusCode") or errors[0].get("errorCode") or "ERROR"), str(errors[0].get("message") or "")
    return "NO_RESULT", "no per-record result returned"


def _record_result(record_id: str, answer: Mapping[str, Any] | None) -> tuple[WriteResult, bool]:
    """A per-record collection answer -> (result, retry it now?)."""
    if answer is None:
        return WriteResult.failure(record_id, retriable=True, code="NO_RESULT", message="no per-record result"), False
    if answer.get("success"):
        return WriteResult.success(record_id), False
    code, message = _first_error(answer)
    retriable = code in RETRIABLE_RECORD_CODES
    return WriteResult.failure(record_id, retriable=retriable, code=code, message=message), retriable


def _as_asked(ids: Sequence[str], found: dict[str, T]) -> dict[str, T]:
    """Answers keyed by exactly the ids asked (a 15-character id finds its 18-character record), in order."""
    by_prefix = {full[:15]: value for full, value in found.items()}
    out: dict[str, T] = {}
    for asked in ids:
        value = found.get(asked) if len(asked) != 15 else by_prefix.get(asked)
        if value is not None:
            out[asked] = value
    return out


def _match_requested(ids: Sequence[str], found: dict[str, Any]) -> dict[str, Any]:
    """Key results by the ids as asked: a 15-character id finds its 18-character record."""
    out = dict(found)
    for requested in ids:
        if requested not in out and len(requested) == 15:
            for full, value in found.items():
                if full[:15] == requested:
                    out[requested] = value
                    break
    return out
