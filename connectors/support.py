"""What every CRM connector shares: the wiring, batched writes, account owners, paced and retried calls.

:class:`CrmConnector` is the base the Salesforce and HubSpot connectors (and any third) derive
from: it builds the logger, the daily-usage tracker, the :class:`CallRunner`, the shared
rate-limit bucket and the account-owner cache in one way; writes owners and reasons in the
largest batches the CRM allows (the last update of an id wins, one result per update, the
reason as a field and/or an activity); and answers account-owner lookups from the cache,
asking the CRM only for the domains it does not know, once per normalised domain. A CRM
declares only what differs: its settings and credentials types, how to classify an error,
how one batch is written, how an activity is attached and how owners are found for domains.
Outcomes are read the same way for every CRM: the leads' conversion facts first (with the ids of
their opportunities), then all those opportunities at once, each step in the CRM's largest batches;
the CRM says how each step reads.

:class:`CallRunner` wraps every CRM call: it waits for the shared rate-limit token(s),
makes the call, turns any failure into a :class:`~connectors.base.RetriableError` or
:class:`~connectors.base.FatalError` (via the connector's classifier), and retries the
retriable ones with tenacity: exponential backoff with full jitter, or exactly the CRM's
``Retry-After``/rate-limit-window hint when it gave one (and then the whole connection's
bucket is blocked for that long, so other workers do not walk into the same 429). After a
bounded number of attempts or seconds the error is raised to the caller, still marked
retriable: the worker keeps the work and tries again later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import redis
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from connectors import metrics
from connectors.base import (
    Connector,
    ConnectorConfigError,
    ConnectorError,
    Opportunity,
    Outcome,
    OwnerUpdate,
    RetriableError,
    WriteResult,
)
from connectors.domains import domain_of
from connectors.ratelimit import LocalTokenBucket, RateLimiter, RateLimitTimeout, TokenBucket
from connectors.redact import redact_event, redact_text, register_secret
from connectors.settings import DailyLimitSettings, RateLimitSettings, RetrySettings

if TYPE_CHECKING:
    from connectors.settings import ConnectorSettings

__all__ = ["AccountCache", "CallRunner", "CrmConnector", "DailyUsage", "LeadOutcome", "RedactingLogger", "batches",
           "get_logger", "register_credentials"]

T = TypeVar("T")


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@dataclasses.dataclass(frozen=True, slots=True)
class LeadOutcome:
    """A lead's conversion facts as its CRM reports them, and the ids of its opportunities (read next)."""

    id: str
    converted: bool
    converted_at: datetime | None = None
    opportunity_ids: tuple[str, ...] = ()
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class RedactingLogger:
    """A structlog logger whose events are scrubbed of secrets before any processor sees them.

    The application's structlog configuration (JSON in production) still applies; the
    redaction does not depend on it having a redaction processor of its own.
    """

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def bind(self, **values: Any) -> RedactingLogger:
        return RedactingLogger(self._logger.bind(**redact_event(None, "", dict(values))))

    def _emit(self, method: str, event: str, values: dict[str, Any]) -> None:
        getattr(self._logger, method)(redact_text(event), **redact_event(None, method, values))

    def debug(self, event: str, **values: Any) -> None:
        self._emit("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._emit("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit("error", event, values)


def register_credentials(credentials: Any) -> None:
    """Register every field a credentials dataclass hides from its ``repr`` (its secrets) for redaction."""
    for item in dataclasses.fields(credentials):
        if not item.repr:
            register_secret(getattr(credentials, item.name))


def get_logger(crm: str) -> RedactingLogger:
    """The connector's logger, bound to its name, with secrets redacted."""
    return RedactingLogger(structlog.get_logger("leadroute.connectors")).bind(crm=crm)


class DailyUsage:
    """The CRM's daily allocation as its response headers report it, and the slow-down it implies."""

    def __init__(self, crm: str, settings: DailyLimitSettings, log: Any) -> None:
        self.crm = crm
        self.settings = settings
        self.used: int | None = None
        self.total: int | None = None
        self.slowed = False
        self._log = log

    @property
    def share(self) -> float | None:
        if self.used is None or not self.total:
            return None
        return self.used / self.total

    def update(self, used: int, total: int) -> None:
        """Record the latest ``used``/``total`` and log when the slow-down starts or ends."""
        if total <= 0:
            return
        self.used, self.total = used, total
        share = used / total
        metrics.DAILY_USAGE.labels(self.crm).set(share)
        slowed = share >= self.settings.slow_down_at
        if slowed != self.slowed:
            self.slowed = slowed
            metrics.SLOWED_DOWN.labels(self.crm).set(1 if slowed else 0)
            if slowed:
                self._log.warning(
                    "crm daily allocation nearly used up: slowing down",
                    used=used,
                    total=total,
                    share=round(share, 4),
                    threshold=self.settings.slow_down_at,
                    factor=self.settings.slow_down_factor,
                )
            else:
                self._log.info("crm daily allocation back under threshold: full speed", used=used, total=total)

    def factor(self) -> float:
        """Multiplier for the bucket's refill rate (1.0, or the slow-down factor)."""
        return self.settings.slow_down_factor if self.slowed else 1.0


def backoff(settings: RetrySettings, attempt: int, rng: random.Random) -> float:
    """The pause after the ``attempt``-th failed try (1-based) when the CRM gave no hint: exponential with
    full jitter, from ``initial_wait / 2`` up to ``initial_wait * 2 ** (attempt - 1)``, never above
    ``max_backoff`` (nor ``max_wait``), so a CRM that recovers is tried again within ``max_backoff``."""
    ceiling = min(settings.max_backoff, settings.max_wait, settings.initial_wait * 2 ** (attempt - 1))
    return rng.uniform(min(settings.initial_wait / 2, ceiling), ceiling)


class _RetryWait:
    """Backoff for tenacity: the error's own hint when present, else :func:`backoff`."""

    def __init__(self, settings: RetrySettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None and hint > 0:
            return float(hint) + self.rng.uniform(0, min(0.25, hint * 0.1))
        return backoff(self.settings, state.attempt_number, self.rng)


class CallRunner:
    """Paced, classified, retried CRM calls for one connector instance."""

    def __init__(
        self,
        crm: str,
        *,
        retry: RetrySettings,
        daily: DailyUsage,
        classify: Callable[[BaseException], ConnectorError],
        log: Any,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.crm = crm
        self.retry = retry
        self.daily = daily
        self.classify = classify
        self.log = log
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.calls = 0
        self.rate_waited = 0.0

    def pace(self, limiters: Sequence[tuple[RateLimiter, float]]) -> None:
        """Wait for one token from each limiter (at its rate, slowed near the daily limit)."""
        factor = self.daily.factor()
        for limiter, rate in limiters:
            try:
                waited = limiter.acquire(1, rate=rate * factor, max_wait=self.retry.max_total)
            except RateLimitTimeout as exc:
                raise RetriableError(str(exc), crm=self.crm, code="RATE_LIMIT_LOCAL", retry_after=exc.wait) from None
            except (redis.RedisError, OSError) as exc:
                raise RetriableError(f"rate limiter unavailable: {exc}", crm=self.crm, code="REDIS") from None
            if waited > 0:
                self.rate_waited += waited
                metrics.rate_limit_wait(self.crm, waited, "daily_quota" if factor < 1 else "shared_limit")

    def backoff(self, attempt: int) -> float:
        """The pause after the ``attempt``-th failed try (1-based): :func:`backoff`."""
        return backoff(self.retry, attempt, self.rng)

    def call(
        self,
        endpoint: str,
        fn: Callable[[], T],
        *,
        limiters: Sequence[tuple[RateLimiter, float]] = (),
        attempts: int | None = None,
    ) -> T:
        """Run ``fn`` (one HTTP call) paced by ``limiters`` ((bucket, rate) pairs), with retries.

        Raises the classified :class:`ConnectorError` once retries are exhausted or the
        error is fatal.
        """

        def attempt() -> T:
            self.pace(limiters)
            started = time.perf_counter()
            status = "200"
            try:
                self.calls += 1
                return fn()
            except ConnectorError as exc:
                status = str(exc.status or 0)
                raise
            except Exception as exc:
                error = self.classify(exc)
                status = str(error.status or 0)
                if error.status == 429 and limiters:
                    block = error.retry_after if error.retry_after else 1.0
                    for limiter, _ in limiters[:1]:
                        limiter.block(block)
                raise error from None
            finally:
                metrics.observe_crm_call(self.crm, endpoint, status, time.perf_counter() - started)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = (getattr(exc, "code", None) or str(getattr(exc, "status", "") or "error"))
            metrics.RETRIES.labels(self.crm, endpoint, reason).inc()
            self.log.warning(
                "crm call failed, retrying",
                endpoint=endpoint,
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 3),
                error=str(exc),
            )

        def hint_too_long(state: RetryCallState) -> bool:
            # a CRM that says "come back in an hour" gets the work handed back, not a sleeping worker
            exc = state.outcome.exception() if state.outcome else None
            return (getattr(exc, "retry_after", None) or 0) > self.retry.max_wait

        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.retry.attempts)
            | stop_after_delay(self.retry.max_total)
            | hint_too_long,
            wait=_RetryWait(self.retry, self.rng),
            retry=retry_if_exception(lambda e: isinstance(e, ConnectorError) and e.retriable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)


class AccountCache:
    """Domain -> account owner answers, in Redis (shared, with TTL) or in-process without it."""

    _NONE = "-"

    def __init__(self, client: redis.Redis | None, prefix: str, *, ttl: float, negative_ttl: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._local: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _key(self, domain: str) -> str:
        return f"{self.prefix}:acct:{domain}"

    def get(self, domain: str) -> tuple[bool, str | None]:
        """``(hit, owner)``: a hit may be a cached "no account" (owner ``None``)."""
        value: str | None
        if self.client is not None:
            try:
                raw = self.client.get(self._key(domain))
            except redis.RedisError:
                raw = None
            value = raw.decode() if isinstance(raw, bytes) else raw
        else:
            with self._lock:
                expires, value = self._local.get(domain, (0.0, None))  # type: ignore[assignment]
                if expires < time.monotonic():
                    value = None
        if value is None:
            return False, None
        return True, (None if value == self._NONE else value)

    def put(self, domain: str, owner: str | None) -> None:
        ttl = self.ttl if owner else self.negative_ttl
        if ttl <= 0:
            return
        value = owner or self._NONE
        if self.client is not None:
            with contextlib.suppress(redis.RedisError):
                self.client.set(self._key(domain), value, px=max(1, int(ttl * 1000)))
        else:
            with self._lock:
                self._local[domain] = (time.monotonic() + ttl, value)


# ----------------------------------------------------------------------------- the shared connector


class CrmConnector(Connector):
    """What every CRM connector shares; subclasses declare only what differs (see the module docstring).

    Subclass duties: ``name``, ``write_batch_max``, ``settings_class``, ``owner_field`` (the
    record field that holds the owner), ``owners_endpoint`` / ``reasons_endpoint`` (metric labels
    of the two writes); :meth:`_credentials_from_env`, :meth:`_classify`, :meth:`_write_batch`,
    :meth:`_attach_activities`, :meth:`_find_account_owners`, :meth:`_lead_outcomes`,
    :meth:`_opportunities`; optionally :meth:`_refuse` (ids the CRM cannot take, answered
    without a call) and ``rate_bucket`` (the general bucket's name when the CRM has several).
    """

    settings_class: ClassVar[type[Any]]
    owner_field: ClassVar[str]
    owners_endpoint: ClassVar[str]
    reasons_endpoint: ClassVar[str]
    rate_bucket: ClassVar[str | None] = None

    settings: Any
    credentials: Any

    def __init__(
        self,
        settings: Any,
        credentials: Any,
        *,
        connection: str,
        limiter: RateLimiter | None = None,
        redis_client: redis.Redis | None = None,
        prefix: str = "leadroute",
        sleep: Callable[[float], None] = time.sleep,
        account_scope: str = "",
    ) -> None:
        """Wire the pieces every connector has.

        ``connection`` identifies the CRM connection (org or portal and client): the rate-limit
        bucket at ``{prefix}:ratelimit:{name}:{connection}[:{bucket}]`` is shared by every
        worker using it, and account owners are cached at
        ``{prefix}:connectors:{name}:{connection}{account_scope}``.
        """
        self.settings = settings
        self.credentials = credentials
        self.log = get_logger(self.name)
        self.daily = DailyUsage(self.name, settings.daily_limit, self.log)
        self.runner = CallRunner(self.name, retry=settings.retry, daily=self.daily, classify=self._classify,
                                 log=self.log, sleep=sleep)
        self._connection = connection
        self._redis = redis_client
        self._prefix = prefix
        self._sleep = sleep
        self._timeout = (settings.timeout.connect, settings.timeout.read)
        self.limiter: RateLimiter = limiter or self._bucket(settings.rate_limit, self.rate_bucket)
        lookup = settings.account_lookup
        self.accounts = AccountCache(redis_client, f"{prefix}:connectors:{self.name}:{connection}{account_scope}",
                                     ttl=lookup.ttl, negative_ttl=lookup.negative_ttl)

    def _bucket(self, limit: RateLimitSettings, kind: str | None = None) -> RateLimiter:
        """A token bucket for ``limit``: in Redis (shared by every worker) when there is one."""
        if self._redis is not None:
            key = f"{self._prefix}:ratelimit:{self.name}:{self._connection}" + (f":{kind}" if kind else "")
            return TokenBucket(self._redis, key, rate=limit.rate, capacity=limit.burst, sleep=self._sleep)
        return LocalTokenBucket(rate=limit.rate, capacity=limit.burst, sleep=self._sleep)

    @classmethod
    def from_env(
        cls,
        settings: ConnectorSettings | None = None,
        *,
        redis_client: redis.Redis | None = None,
        prefix: str = "leadroute",
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Build from settings (the CRM's defaults when ``None``) and the CRM's environment variables."""
        settings = settings or cls.settings_class()
        if not isinstance(settings, cls.settings_class):
            raise ConnectorConfigError(f"{cls.name} connector needs {cls.settings_class.__name__}", crm=cls.name)
        credentials = cls._credentials_from_env(settings, env)
        return cls(settings, credentials, redis_client=redis_client, prefix=prefix, **kwargs)  # type: ignore[call-arg]

    # ------------------------------------------------------------------ what each CRM declares

    @classmethod
    @abstractmethod
    def _credentials_from_env(cls, settings: Any, env: Mapping[str, str] | None) -> Any:
        """The CRM's credentials from ``env`` (``os.environ`` when ``None``)."""

    @abstractmethod
    def _classify(self, exc: BaseException) -> ConnectorError:
        """A failed call as a :class:`RetriableError` or :class:`FatalError`, with the CRM's code and hint."""

    @abstractmethod
    def _write_batch(self, fields: dict[str, dict[str, Any]], endpoint: str) -> dict[str, WriteResult]:
        """Write one batch (at most ``write_batch_max`` records): CRM field values by record id ->
        one result per id."""

    @abstractmethod
    def _attach_activities(self, results: dict[str, WriteResult], notes: Mapping[str, str]) -> dict[str, WriteResult]:
        """An activity (Task, Note) with the reason on each written record; a failure becomes a warning."""

    @abstractmethod
    def _find_account_owners(self, domains: list[str]) -> dict[str, str]:
        """Ask the CRM for the account owners of normalised, uncached domains; the found ones only."""

    @abstractmethod
    def _lead_outcomes(self, ids: list[str]) -> dict[str, LeadOutcome]:
        """The conversion facts of the leads with these (distinct) ids, keyed by the ids as given; unknown,
        deleted and malformed ids absent. Batched: a few calls per batch, none per lead."""

    @abstractmethod
    def _opportunities(self, ids: list[str]) -> dict[str, Opportunity]:
        """The opportunities with these (distinct) ids, in the CRM's largest batches; missing ones absent."""

    def _refuse(self, record_id: str) -> WriteResult | None:
        """The result for an id the CRM cannot take at all (not worth a call), else ``None``."""
        return None

    # ------------------------------------------------------------------ writes

    def _reason_text(self, reason: str) -> str:
        limit = self.settings.reason.max_length
        return reason if len(reason) <= limit else reason[: limit - 1] + "…"

    def _write(self, fields: dict[str, dict[str, Any]], endpoint: str) -> dict[str, WriteResult]:
        """Write field values per record in batches of ``write_batch_size`` (at most what the CRM
        allows); one result per id, in the order given, each counted in the metrics."""
        results: dict[str, WriteResult] = {}
        accepted: list[str] = []
        for record_id in fields:
            refused = self._refuse(record_id)
            if refused is None:
                accepted.append(record_id)
            else:
                results[record_id] = refused
        size = min(self.settings.write_batch_size, self.write_batch_max)
        for start in range(0, len(accepted), size):
            results.update(self._write_batch({i: fields[i] for i in accepted[start : start + size]}, endpoint))
        ordered = {record_id: results[record_id] for record_id in fields}
        for result in ordered.values():
            metrics.RECORDS_WRITTEN.labels(self.name, result.status.value).inc()
        return ordered

    def write_owners(self, updates: Sequence[OwnerUpdate]) -> list[WriteResult]:
        reason = self.settings.reason
        fields: dict[str, dict[str, Any]] = {}
        for update in updates:  # the last update of an id wins: the CRMs refuse duplicate ids in a batch
            values: dict[str, Any] = {self.owner_field: update.owner_id}
            if reason.field and update.reason is not None:
                values[reason.field] = self._reason_text(update.reason)
            values.update(update.fields)
            fields[update.id] = values
        results = self._write(fields, self.owners_endpoint)
        if reason.activity:
            results = self._attach_activities(results, {u.id: u.reason for u in updates if u.reason})
        return [results[u.id] for u in updates]

    def attach_reasons(self, reasons: Mapping[str, str]) -> list[WriteResult]:
        setting = self.settings.reason
        if setting.field:
            results = self._write({i: {setting.field: self._reason_text(r)} for i, r in reasons.items()},
                                  self.reasons_endpoint)
        else:
            results = {i: WriteResult.success(i) for i in reasons}
        if setting.activity:
            results = self._attach_activities(results, dict(reasons))
        return [results[i] for i in reasons]

    # ------------------------------------------------------------------ outcomes

    def read_outcomes(self, ids: Sequence[str]) -> dict[str, Outcome]:
        """What became of each lead: its conversion facts, then every opportunity of the batch in one go.

        The cost depends on the number of batches, not of leads: the CRM's lead reads (one per batch of
        ids), then one opportunity read per batch of opportunity ids, each a paced and retried call.
        """
        leads = self._lead_outcomes(list(dict.fromkeys(ids))) if ids else {}
        wanted = list(dict.fromkeys(o for lead in leads.values() for o in lead.opportunity_ids))
        found = self._opportunities(wanted) if wanted else {}
        return {
            asked: Outcome.of(asked, converted=lead.converted, converted_at=lead.converted_at,
                              opportunities=[found[o] for o in lead.opportunity_ids if o in found], fields=lead.fields)
            for asked, lead in leads.items()
        }

    # ------------------------------------------------------------------ account owners

    def account_owner(self, domain: str) -> str | None:
        """The owner of the account on ``domain`` (see :meth:`account_owners`)."""
        return self.account_owners([domain])[domain]

    def account_owners(self, domains: Sequence[str]) -> dict[str, str | None]:
        """Account owners keyed by the domains as given.

        A domain is normalised as a lead's is (:func:`connectors.domains.domain_of`: case,
        scheme, ``www.`` and other subdomains do not matter), so every spelling of one company
        shares one cache entry and one CRM lookup; a free-mail or unreadable domain has no
        account and costs nothing. Cached answers (including "none") come from the cache; the
        CRM is asked once for all the others.
        """
        out: dict[str, str | None] = {}
        wanted: dict[str, list[str]] = {}  # normalised domain -> the spellings asked for
        for given in dict.fromkeys(domains):
            domain = domain_of(website=given)
            if domain is None:
                out[given] = None
                continue
            hit, owner = self.accounts.get(domain)
            if hit:
                out[given] = owner
            else:
                wanted.setdefault(domain, []).append(given)
        found = self._find_account_owners(list(wanted)) if wanted else {}
        for domain, spellings in wanted.items():
            self.accounts.put(domain, found.get(domain))
            for given in spellings:
                out[given] = found.get(domain)
        return out
