"""The ``web`` process: CRM webhook receivers, ``/healthz`` and ``/metrics``.

CRMs push changes here so leads are routed in about a second instead of at the next poll.
Both receivers only *verify, de-duplicate and enqueue*: HubSpot expects an answer within
5 s and Salesforce retries an Outbound Message until it is acknowledged, so no CRM call or
routing happens in the request. Every enqueued id is routed on fresh CRM state by the
worker, which makes duplicate and out-of-order deliveries harmless; de-duplication here
just saves work.

* ``POST /webhooks/hubspot``: HubSpot webhooks, signature v3 (HMAC-SHA256 with the app
  secret over method + full URI + raw body + timestamp, base64), timestamps older than 5
  minutes rejected, constant-time comparison, at most 100 events, de-duplicated by
  ``portalId:eventId``; ``objectId`` of creation and property-change events of the
  subscribed object are enqueued. Legacy v1/v2 signatures (no timestamp, so no replay
  protection) are refused unless explicitly enabled.
* ``POST /webhooks/salesforce``: Outbound Messages (SOAP, up to 100 ``Notification``),
  ``OrganizationId`` checked against the allowed org(s), de-duplicated by notification
  ``Id``, the sObject ``Id`` enqueued, answered with the ``<Ack>true</Ack>`` envelope.
  XML is parsed with defusedxml (no DTDs, no entities).
* ``GET /healthz``: every injected check, 200 if all pass, else 503.
* ``GET /metrics``: Prometheus text, aggregated across processes in multiprocess mode.

Everything the app touches is injected (:func:`create_app`), so the Celery wiring stays
in the tasks module and tests run the real app under a real server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from worker.observability import logs, metrics

__all__ = [
    "HUBSPOT_EVENT_NAMESPACE",
    "SALESFORCE_ACK",
    "SALESFORCE_NOTIFICATION_NAMESPACE",
    "Enqueue",
    "FirstSeen",
    "WebSettings",
    "create_app",
    "decode_hubspot_uri",
    "hubspot_v1_signature",
    "hubspot_v2_signature",
    "hubspot_v3_signature",
]

log = logs.get_logger(__name__)

Enqueue = Callable[[str, list[str], str], None]
FirstSeen = Callable[[str, str], bool]
Forget = Callable[[str, str], None]
HealthCheck = Callable[[], bool]

HUBSPOT_EVENT_NAMESPACE = "hubspot-event"
SALESFORCE_NOTIFICATION_NAMESPACE = "salesforce-notification"
MAX_EVENTS = 100  # HubSpot sends at most 100 events per request; Salesforce at most 100 notifications

ENV_HUBSPOT_SECRET = "HUBSPOT_APP_SECRET"
ENV_SALESFORCE_ORG = "SALESFORCE_ORG_ID"
ENV_PUBLIC_URL = "LEADROUTE_PUBLIC_URL"
ENV_HUBSPOT_LEGACY = "LEADROUTE_HUBSPOT_LEGACY_SIGNATURES"
ENV_HUBSPOT_OBJECT = "LEADROUTE_HUBSPOT_OBJECT"
ENV_SALESFORCE_OBJECTS = "LEADROUTE_SALESFORCE_OBJECTS"

# HubSpot's object type ids, for the newer generic "object.creation" subscription events.
_HUBSPOT_TYPE_IDS = {"contact": "0-1", "company": "0-2", "deal": "0-3", "ticket": "0-5"}
_HUBSPOT_EVENTS = ("creation", "propertyChange", "restore")

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SF_OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SF_SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

#: The acknowledgement Salesforce requires (the ``notificationsResponse`` element of the
#: outbound messaging WSDL); without it the message is retried for up to 24 hours.
SALESFORCE_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
    "  <soapenv:Body>\n"
    '    <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
    "      <Ack>true</Ack>\n"
    "    </notificationsResponse>\n"
    "  </soapenv:Body>\n"
    "</soapenv:Envelope>\n"
)


# =============================================================================== settings


def _split(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class WebSettings:
    """What the receivers check against; secrets from the environment (:meth:`from_env`)."""

    hubspot_app_secret: str | None = field(default=None, repr=False)
    #: The public base URL HubSpot calls (e.g. ``https://leadroute.example.com``), when a proxy
    #: changes scheme, host or path prefix: the v3 signature covers the full URI HubSpot used.
    public_url: str | None = None
    salesforce_org_ids: frozenset[str] = frozenset()
    hubspot_object: str = "contact"
    salesforce_objects: frozenset[str] = frozenset({"Lead"})
    accept_legacy_hubspot_signatures: bool = False
    max_body_bytes: int = 2_000_000
    timestamp_tolerance: float = 300.0
    health_timeout: float = 3.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WebSettings:
        """``HUBSPOT_APP_SECRET``, ``SALESFORCE_ORG_ID`` (comma-separated), ``LEADROUTE_PUBLIC_URL``..."""
        env = os.environ if environ is None else environ
        secret = (env.get(ENV_HUBSPOT_SECRET) or "").strip() or None
        logs.register_secret(secret)
        values: dict[str, Any] = {
            "hubspot_app_secret": secret,
            "public_url": (env.get(ENV_PUBLIC_URL) or "").strip() or None,
            "salesforce_org_ids": _split(env.get(ENV_SALESFORCE_ORG)),
            "accept_legacy_hubspot_signatures": (env.get(ENV_HUBSPOT_LEGACY) or "").strip().lower() in ("1", "true", "yes"),
        }
        if env.get(ENV_HUBSPOT_OBJECT):
            values["hubspot_object"] = env[ENV_HUBSPOT_OBJECT].strip().lower()
        if env.get(ENV_SALESFORCE_OBJECTS):
            values["salesforce_objects"] = _split(env[ENV_SALESFORCE_OBJECTS])
        values.update(overrides)
        return cls(**values)


class Reject(Exception):
    """A request we refuse: HTTP status and a short reason for the caller (and the metric label)."""

    def __init__(self, status: int, reason: str, label: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.label = status, reason, label


# =============================================================================== HubSpot signatures

# HubSpot decodes these percent-escapes in the URI it signs; the receiver must do the same.
_URI_DECODE = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


def decode_hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the escapes above decoded (case-insensitively), others kept."""
    out, i = [], 0
    while i < len(uri):
        chunk = uri[i : i + 3].upper()
        if uri[i] == "%" and chunk in _URI_DECODE:
            out.append(_URI_DECODE[chunk])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp)): ``X-HubSpot-Signature-v3``."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot_v2_signature(secret: str, method: str, uri: str, body: bytes) -> str:
    """hex(SHA-256(secret + method + uri + body)): legacy ``X-HubSpot-Signature`` version v2."""
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def hubspot_v1_signature(secret: str, body: bytes) -> str:
    """hex(SHA-256(secret + body)): legacy ``X-HubSpot-Signature`` version v1."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.strip().encode())


# =============================================================================== the app


class _Receivers:
    def __init__(
        self,
        enqueue: Enqueue,
        first_seen: FirstSeen,
        settings: WebSettings,
        forget: Forget | None,
        clock: Callable[[], float],
    ) -> None:
        self.enqueue, self.first_seen, self.settings = enqueue, first_seen, settings
        self.forget, self.clock = forget, clock

    # ----------------------------------------------------------------------- shared

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Reject(413, f"body over {limit} bytes", "too_large")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Reject(413, f"body over {limit} bytes", "too_large")
                chunks.append(chunk)
        except ClientDisconnect as exc:
            raise Reject(400, "client disconnected", "disconnected") from exc
        return b"".join(chunks)

    def _public_uri(self, request: Request) -> str:
        url = request.url
        if self.settings.public_url:
            base = self.settings.public_url.rstrip("/")
            return base + url.path + (f"?{url.query}" if url.query else "")
        return str(url)

    def _accept(self, source: str, crm: str, namespace: str, items: Sequence[tuple[str, str]], how: str) -> dict[str, int]:
        """De-duplicate (event key, record id) pairs and enqueue the fresh record ids once each."""
        fresh_keys: list[str] = []
        record_ids: list[str] = []
        duplicates = 0
        for key, record_id in items:
            if self.first_seen(namespace, key):
                fresh_keys.append(key)
                if record_id not in record_ids:
                    record_ids.append(record_id)
            else:
                duplicates += 1
        if record_ids:
            try:
                self.enqueue(crm, record_ids, how)
            except Exception:
                # Un-see what we marked, so the CRM's retry (we answer 503) is not dropped as a duplicate.
                if self.forget is not None:
                    for key in fresh_keys:
                        self.forget(namespace, key)
                raise
        metrics.WEBHOOK_EVENTS.labels(source=source, result="enqueued").inc(len(fresh_keys))
        metrics.WEBHOOK_EVENTS.labels(source=source, result="duplicate").inc(duplicates)
        return {"enqueued": len(record_ids), "duplicates": duplicates}

    def _reject(self, source: str, exc: Reject) -> Response:
        metrics.WEBHOOK_REQUESTS.labels(source=source, outcome=exc.label).inc()
        log.warning("webhook rejected", source=source, status=exc.status, why=exc.reason)
        return PlainTextResponse(exc.reason + "\n", status_code=exc.status)

    # ----------------------------------------------------------------------- HubSpot

    def _verify_hubspot(self, request: Request, body: bytes) -> str:
        secret = self.settings.hubspot_app_secret
        if not secret:
            raise Reject(503, f"HubSpot webhooks are not configured ({ENV_HUBSPOT_SECRET} is not set)", "not_configured")
        headers = request.headers
        signature = headers.get("x-hubspot-signature-v3")
        if signature:
            timestamp = headers.get("x-hubspot-request-timestamp", "")
            if not timestamp.isdigit():
                raise Reject(401, "missing or invalid X-HubSpot-Request-Timestamp", "bad_timestamp")
            age = self.clock() - int(timestamp) / 1000.0
            if age > self.settings.timestamp_tolerance:
                raise Reject(401, "stale X-HubSpot-Request-Timestamp (older than 5 minutes)", "stale")
            if age < -self.settings.timestamp_tolerance:
                raise Reject(401, "X-HubSpot-Request-Timestamp is in the future", "bad_timestamp")
            uri = decode_hubspot_uri(self._public_uri(request))
            if not _same(hubspot_v3_signature(secret, request.method, uri, body, timestamp), signature):
                raise Reject(401, "invalid X-HubSpot-Signature-v3", "bad_signature")
            return "v3"
        legacy = headers.get("x-hubspot-signature")
        version = (headers.get("x-hubspot-signature-version") or "").strip().lower()
        if not legacy:
            raise Reject(401, "missing X-HubSpot-Signature-v3", "no_signature")
        if not self.settings.accept_legacy_hubspot_signatures:
            raise Reject(
                401,
                "X-HubSpot-Signature-v3 required: v1/v2 signatures carry no timestamp and are not accepted",
                "legacy_signature",
            )
        if version == "v1":
            expected = hubspot_v1_signature(secret, body)
        elif version == "v2":
            expected = hubspot_v2_signature(secret, request.method, self._public_uri(request), body)
        else:
            raise Reject(401, f"unknown X-HubSpot-Signature-Version {version!r}", "bad_signature")
        if not _same(expected, legacy):
            raise Reject(401, f"invalid X-HubSpot-Signature ({version})", "bad_signature")
        return version

    def _hubspot_events(self, body: bytes) -> tuple[list[tuple[str, str]], int]:
        try:
            events = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Reject(400, "body is not valid JSON", "bad_payload") from exc
        if not isinstance(events, list):
            raise Reject(400, "expected a JSON array of events", "bad_payload")
        if len(events) > MAX_EVENTS:
            raise Reject(413, f"batch of {len(events)} events exceeds {MAX_EVENTS}", "too_many_events")
        obj = self.settings.hubspot_object
        wanted = {f"{obj}.{kind}" for kind in _HUBSPOT_EVENTS}
        generic = {f"object.{kind}" for kind in _HUBSPOT_EVENTS}
        type_ids = {obj, _HUBSPOT_TYPE_IDS.get(obj, obj)}  # "0-1" in payloads; "contact" also accepted
        items: list[tuple[str, str]] = []
        ignored = 0
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise Reject(400, f"event {index} is not an object", "bad_payload")
            event_id, object_id = event.get("eventId"), event.get("objectId")
            if not _is_id(event_id) or not _is_id(object_id):
                raise Reject(400, f"event {index} lacks a numeric eventId or objectId", "bad_payload")
            kind = event.get("subscriptionType")
            if not isinstance(kind, str):
                raise Reject(400, f"event {index} lacks subscriptionType", "bad_payload")
            relevant = kind in wanted or (kind in generic and str(event.get("objectTypeId", "")) in type_ids)
            if not relevant:
                ignored += 1
                continue
            items.append((f"{event.get('portalId', '')}:{event_id}", str(object_id)))
        return items, ignored

    async def hubspot(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            version = self._verify_hubspot(request, body)
            items, ignored = self._hubspot_events(body)
        except Reject as exc:
            return self._reject("hubspot", exc)
        try:
            counts = await run_in_threadpool(self._accept, "hubspot", "hubspot", HUBSPOT_EVENT_NAMESPACE, items, "webhook")
        except Exception:
            log.exception("hubspot webhook: enqueue failed; HubSpot will retry")
            metrics.WEBHOOK_REQUESTS.labels(source="hubspot", outcome="enqueue_failed").inc()
            return PlainTextResponse("temporarily unable to enqueue; retry\n", status_code=503)
        metrics.WEBHOOK_REQUESTS.labels(source="hubspot", outcome="accepted").inc()
        metrics.WEBHOOK_EVENTS.labels(source="hubspot", result="ignored").inc(ignored)
        log.info("hubspot webhook accepted", signature=version, ignored=ignored, **counts)
        return JSONResponse({**counts, "ignored": ignored})

    # ----------------------------------------------------------------------- Salesforce

    def _salesforce_notifications(self, body: bytes) -> tuple[str, list[tuple[str, str]]]:
        try:
            root = SafeET.fromstring(body, forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            raise Reject(400, "body is not acceptable XML", "bad_payload") from exc
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise Reject(400, "expected a SOAP envelope", "bad_payload")
        notifications = root.find(f"{{{SOAP_ENV}}}Body/{{{SF_OUTBOUND}}}notifications")
        if notifications is None:
            raise Reject(400, "no outbound-message notifications in the SOAP body", "bad_payload")
        org = _text(notifications, "OrganizationId")
        allowed = self.settings.salesforce_org_ids
        if not allowed:
            raise Reject(
                503, f"Salesforce outbound messages are not configured ({ENV_SALESFORCE_ORG} is not set)", "not_configured"
            )
        # Org ids come as 15 (case-sensitive) or 18 characters; the first 15 identify the org.
        if not org or org[:15] not in {o[:15] for o in allowed}:
            raise Reject(403, "OrganizationId is not allowed", "wrong_org")
        entries = notifications.findall(f"{{{SF_OUTBOUND}}}Notification")
        if len(entries) > MAX_EVENTS:
            raise Reject(413, f"{len(entries)} notifications exceed {MAX_EVENTS}", "too_many_events")
        items: list[tuple[str, str]] = []
        for index, entry in enumerate(entries):
            notification_id = _text(entry, "Id")
            sobject = entry.find(f"{{{SF_OUTBOUND}}}sObject")
            if not notification_id or sobject is None:
                raise Reject(400, f"notification {index} lacks Id or sObject", "bad_payload")
            sobject_type = (sobject.get(f"{{{XSI}}}type") or "").rpartition(":")[2]
            if sobject_type not in self.settings.salesforce_objects:
                expected = ", ".join(sorted(self.settings.salesforce_objects))
                raise Reject(400, f"sObject type {sobject_type or '?'} is not routed (expected {expected})", "wrong_object")
            record_id = (sobject.findtext(f"{{{SF_SOBJECT}}}Id") or "").strip()
            if not record_id:
                raise Reject(400, f"notification {index} has no sObject Id (add Id to the message's fields)", "bad_payload")
            items.append((f"{org[:15]}:{notification_id}", record_id))
        return org, items

    async def salesforce(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            org, items = self._salesforce_notifications(body)
        except Reject as exc:
            return self._reject("salesforce", exc)
        try:
            counts = await run_in_threadpool(
                self._accept, "salesforce", "salesforce", SALESFORCE_NOTIFICATION_NAMESPACE, items, "outbound-message"
            )
        except Exception:
            log.exception("salesforce outbound message: enqueue failed; Salesforce will retry")
            metrics.WEBHOOK_REQUESTS.labels(source="salesforce", outcome="enqueue_failed").inc()
            return PlainTextResponse("temporarily unable to enqueue; retry\n", status_code=503)
        metrics.WEBHOOK_REQUESTS.labels(source="salesforce", outcome="accepted").inc()
        log.info("salesforce outbound message accepted", org=org, **counts)
        return Response(SALESFORCE_ACK, media_type="text/xml; charset=utf-8")


def _is_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _text(parent: Element, name: str) -> str:
    return (parent.findtext(f"{{{SF_OUTBOUND}}}{name}") or "").strip()


async def _run_check(check: HealthCheck, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        ok = bool(await asyncio.wait_for(run_in_threadpool(check), timeout))
        result: dict[str, Any] = {"ok": ok}
    except TimeoutError:
        result = {"ok": False, "error": f"timed out after {timeout:g}s"}
    except Exception as exc:
        result = {"ok": False, "error": logs.redact_text(f"{type(exc).__name__}: {exc}")[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def create_app(
    *,
    enqueue: Enqueue,
    first_seen: FirstSeen,
    health_checks: Mapping[str, HealthCheck] | None = None,
    settings: WebSettings | None = None,
    forget: Forget | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The web app, with everything it touches injected.

    ``enqueue(crm, record_ids, source)`` puts ids on the pending set (it must be quick);
    ``first_seen(namespace, id)`` is True the first time an event id is seen (bind the TTL,
    e.g. ``lambda ns, i: store.first_seen(ns, i, 86400)``); ``forget(namespace, id)``,
    optional, un-marks an id when enqueueing failed so the CRM's retry is not dropped;
    ``health_checks`` maps names (``redis``, ``broker``) to callables returning True when healthy.
    """
    receivers = _Receivers(enqueue, first_seen, settings or WebSettings.from_env(), forget, clock)
    checks = dict(health_checks or {})
    timeout = receivers.settings.health_timeout

    async def healthz(request: Request) -> Response:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[name], timeout) for name in names))
        report = dict(zip(names, results, strict=True))
        healthy = all(r["ok"] for r in results)
        return JSONResponse({"status": "ok" if healthy else "unavailable", "checks": report}, status_code=200 if healthy else 503)

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics.render)
        return Response(body, headers={"Content-Type": content_type})

    routes = [
        Route("/webhooks/hubspot", receivers.hubspot, methods=["POST"]),
        Route("/webhooks/salesforce", receivers.salesforce, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.settings = receivers.settings
    return app
