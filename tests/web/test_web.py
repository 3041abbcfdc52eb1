"""The web process over real HTTP: HubSpot and Salesforce receivers, /healthz and /metrics.

Signature vectors and message shapes come from the vendors' own material:

* HubSpot v3: the test data in HubSpot's official client libraries,
  ``HubSpot/hubspot-api-python`` ``tests/spec/utils/test_signature.py`` (timestamp 15000000)
  and ``HubSpot/hubspot-api-ruby`` ``spec/helpers/signature_spec.rb`` (timestamp
  1700000300000): client secret ``yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy``, ``POST``
  ``https://www.example.com/webhook_uri``, body ``{'example_field':'example_value'}``.
  The algorithm is the one in HubSpot's "Validating requests" developer docs
  (developers.hubspot.com/docs/api/webhooks/validating-requests), including the table of
  percent-escapes to decode in the URI.
* HubSpot v1/v2: the worked examples on HubSpot's "v1 request validation" and "v2 request
  validation" FAQ pages (developers.hubspot.com/docs/faq/v1-request-validation, .../v2-...),
  and the same client-library test data.
* HubSpot event type names (``contact.creation``, ``contact.propertyChange``, ``object.*``
  with ``objectTypeId``): the ``eventType`` enum of HubSpot's webhooks API
  schema (``SubscriptionCreateRequest``, as ``hubspot.webhooks.models`` of HubSpot's Python client states it).
* Salesforce: the ``notifications``/``notificationsResponse`` elements of the outbound
  messaging WSDL (Salesforce SOAP API Developer Guide, "Understanding the Outbound
  Messaging WSDL"), namespace ``http://soap.sforce.com/2005/09/outbound``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import Queue
from worker.store.connection import free_port
from worker.store.redis_store import RedisStore
from worker.web.receivers import (
    SALESFORCE_ACK,
    WebSettings,
    create_app,
    decode_hubspot_uri,
    hubspot_v1_signature,
    hubspot_v2_signature,
    hubspot_v3_signature,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "app-secret-5b1f0c2e-9d3a-4c7b-8e6f-1a2b3c4d5e6f"
ORG = "00D5g000004ABCDEAA"

Serve = Callable[[Any], str]
Seen = Callable[[str, str], bool]

# =============================================================================== vendor vectors

DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_URI = "https://www.example.com/webhook_uri"
DOC_BODY = b"{'example_field':'example_value'}"


@pytest.mark.parametrize(
    ("timestamp", "expected", "source"),
    [
        ("15000000", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=", "hubspot-api-python tests/spec/utils/test_signature.py"),
        ("1700000300000", "RnbPH7+UMKVkbV32P8bz450N4M56aPmcru1+D3kSDtw=", "hubspot-api-ruby spec/helpers/signature_spec.rb"),
    ],
)
def test_v3_signature_matches_hubspots_published_vectors(timestamp: str, expected: str, source: str) -> None:
    assert hubspot_v3_signature(DOC_SECRET, "POST", DOC_URI, DOC_BODY, timestamp) == expected, source


def test_v1_and_v2_signatures_match_hubspots_documented_examples() -> None:
    # "v1 request validation" FAQ: a contact.creation event body.
    v1_body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
        b'"changeFlag":"NEW","appId":54321}]'
    )
    assert hubspot_v1_signature(DOC_SECRET, v1_body) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    # "v2 request validation" FAQ: a GET with no body.
    assert hubspot_v2_signature(DOC_SECRET, "GET", DOC_URI, b"") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )
    # Client-library test data.
    assert hubspot_v1_signature(DOC_SECRET, DOC_BODY) == "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    assert hubspot_v2_signature(DOC_SECRET, "POST", DOC_URI, DOC_BODY) == (
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
    )


def test_the_signed_uri_decodes_only_the_escapes_hubspot_lists() -> None:
    assert (
        decode_hubspot_uri("https://h.example.com/hook%3Fa%3Db%2Fc%40d%2a?x=%2C%3b")
        == "https://h.example.com/hook?a%3Db/c@d*?x=,;"
    )
    assert decode_hubspot_uri("https://h.example.com/a%20b%25") == "https://h.example.com/a%20b%25"


# =============================================================================== HubSpot over HTTP


def event(event_id: int, object_id: int, kind: str = "contact.creation", **extra: Any) -> dict[str, Any]:
    return {
        "eventId": event_id, "subscriptionId": 4849549, "portalId": 62515, "appId": 54321,
        "occurredAt": 1765043528476, "subscriptionType": kind, "attemptNumber": 0, "objectId": object_id,
        "changeSource": "CRM", **extra,
    }  # fmt: skip


def post_hubspot(
    base: str,
    payload: Any,
    *,
    secret: str = SECRET,
    timestamp_ms: int | None = None,
    signed_url: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    url = base + "/webhooks/hubspot"
    body = raw if raw is not None else json.dumps(payload).encode()
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    signature = hubspot_v3_signature(secret, "POST", signed_url or url, body, ts)
    sent = {"Content-Type": "application/json", "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts}
    if headers is not None:
        sent = headers
    return requests.post(url, data=body, headers=sent, timeout=10)


@pytest.fixture
def hubspot(serve: Serve, queue: Queue, seen: Seen) -> str:
    return serve(create_app(enqueue=queue, first_seen=seen, settings=WebSettings(hubspot_app_secret=SECRET)))


def test_a_signed_batch_is_accepted_and_its_contact_ids_enqueued_once_each(hubspot: str, queue: Queue) -> None:
    batch = [
        event(1, 101),
        event(2, 102, "contact.propertyChange", propertyName="lifecyclestage"),
        event(3, 101, "contact.propertyChange"),
    ]
    response = post_hubspot(hubspot, batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"enqueued": 2, "duplicates": 0, "ignored": 0}
    assert queue.calls == [("hubspot", ["101", "102"], "webhook")]


def test_events_of_other_objects_and_kinds_are_acknowledged_but_ignored(hubspot: str, queue: Queue) -> None:
    batch = [
        event(10, 201, "company.creation"),
        event(11, 202, "contact.deletion"),
        event(12, 203, "object.creation", objectTypeId="0-1"),  # the newer generic form, for contacts
        event(13, 204, "object.creation", objectTypeId="0-3"),  # a deal
        event(14, 205, "contact.restore"),  # a restored contact needs an owner again
    ]
    response = post_hubspot(hubspot, batch)
    assert response.json() == {"enqueued": 2, "duplicates": 0, "ignored": 3}
    assert queue.ids == ["203", "205"]


def test_a_replayed_event_is_enqueued_once(hubspot: str, queue: Queue) -> None:
    assert post_hubspot(hubspot, [event(7, 301)]).json()["enqueued"] == 1
    replay = post_hubspot(hubspot, [event(7, 301)])  # HubSpot retries, or an attacker replays a captured request
    assert replay.status_code == 200
    assert replay.json() == {"enqueued": 0, "duplicates": 1, "ignored": 0}
    assert queue.ids == ["301"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret": "forged-secret"}, "invalid X-HubSpot-Signature-v3"),
        ({"timestamp_ms": int((time.time() - 301) * 1000)}, "stale"),
        ({"timestamp_ms": int((time.time() + 3600) * 1000)}, "future"),
        ({"headers": {"Content-Type": "application/json"}}, "missing X-HubSpot-Signature-v3"),
        ({"headers": {"X-HubSpot-Signature-v3": "abc=", "X-HubSpot-Request-Timestamp": "yesterday"}}, "Timestamp"),
    ],
)
def test_forged_stale_or_unsigned_requests_are_refused(hubspot: str, queue: Queue, kwargs: dict[str, Any], reason: str) -> None:
    response = post_hubspot(hubspot, [event(1, 101)], **kwargs)
    assert response.status_code == 401
    assert reason in response.text
    assert queue.calls == []


def test_a_body_changed_after_signing_is_refused(hubspot: str, queue: Queue) -> None:
    url = hubspot + "/webhooks/hubspot"
    ts = str(int(time.time() * 1000))
    signed = json.dumps([event(1, 101)]).encode()
    tampered = json.dumps([event(1, 666)]).encode()
    headers = {"X-HubSpot-Signature-v3": hubspot_v3_signature(SECRET, "POST", url, signed, ts), "X-HubSpot-Request-Timestamp": ts}
    assert requests.post(url, data=tampered, headers=headers, timeout=10).status_code == 401
    assert queue.calls == []


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"[{not json", 400, "not valid JSON"),
        (b'{"eventId": 1}', 400, "JSON array"),
        (json.dumps([{"eventId": 1, "subscriptionType": "contact.creation"}]).encode(), 400, "objectId"),
        (json.dumps([event(1, 101), "x"]).encode(), 400, "event 1"),
        (json.dumps([event(i, i) for i in range(1, 102)]).encode(), 413, "exceeds 100"),
    ],
)
def test_malformed_or_oversized_batches_are_refused_whole(
    hubspot: str, queue: Queue, raw: bytes, status: int, reason: str
) -> None:
    response = post_hubspot(hubspot, None, raw=raw)  # correctly signed, bad content
    assert response.status_code == status
    assert reason in response.text
    assert queue.calls == []


def test_a_body_over_the_size_limit_is_refused_before_reading_it(serve: Serve, queue: Queue, seen: Seen) -> None:
    base = serve(create_app(enqueue=queue, first_seen=seen, settings=WebSettings(hubspot_app_secret=SECRET, max_body_bytes=1000)))
    response = post_hubspot(base, [event(i, i, propertyValue="x" * 50) for i in range(1, 30)])
    assert response.status_code == 413
    assert queue.calls == []


def test_behind_a_proxy_the_signature_covers_the_public_url(serve: Serve, queue: Queue, seen: Seen) -> None:
    settings = WebSettings(hubspot_app_secret=SECRET, public_url="https://leadroute.example.com/")
    base = serve(create_app(enqueue=queue, first_seen=seen, settings=settings))
    public = "https://leadroute.example.com/webhooks/hubspot"
    assert post_hubspot(base, [event(1, 101)], signed_url=public).status_code == 200
    assert post_hubspot(base, [event(2, 102)]).status_code == 401  # signed for the internal URL: not what HubSpot signs
    assert queue.ids == ["101"]


def test_legacy_signatures_are_refused_unless_enabled_then_checked_against_the_documented_example(
    serve: Serve, queue: Queue, seen: Seen
) -> None:
    # Exactly the v1 example of HubSpot's "v1 request validation" page.
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
        b'"changeFlag":"NEW","appId":54321}]'
    )
    headers = {
        "X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
        "X-HubSpot-Signature-Version": "v1",
    }
    strict = serve(create_app(enqueue=queue, first_seen=seen, settings=WebSettings(hubspot_app_secret=DOC_SECRET)))
    response = requests.post(strict + "/webhooks/hubspot", data=body, headers=headers, timeout=10)
    assert response.status_code == 401 and "v1/v2 signatures carry no timestamp" in response.text

    legacy_settings = WebSettings(hubspot_app_secret=DOC_SECRET, accept_legacy_hubspot_signatures=True)
    legacy = serve(create_app(enqueue=queue, first_seen=seen, settings=legacy_settings))
    assert requests.post(legacy + "/webhooks/hubspot", data=body, headers=headers, timeout=10).status_code == 200
    assert queue.ids == ["123"]
    forged = {**headers, "X-HubSpot-Signature": "0" * 64}
    assert requests.post(legacy + "/webhooks/hubspot", data=body, headers=forged, timeout=10).status_code == 401


def test_without_an_app_secret_hubspot_webhooks_are_unavailable(serve: Serve, queue: Queue, seen: Seen) -> None:
    base = serve(create_app(enqueue=queue, first_seen=seen, settings=WebSettings()))
    response = post_hubspot(base, [event(1, 101)])
    assert response.status_code == 503 and "HUBSPOT_APP_SECRET" in response.text
    assert queue.calls == []


def test_when_enqueueing_fails_the_crm_is_asked_to_retry_and_the_retry_is_not_lost(
    serve: Serve, queue: Queue, seen: Seen, store: RedisStore
) -> None:
    def forget(namespace: str, item_id: str) -> None:
        store.client.delete(store.key("seen", namespace, item_id))

    base = serve(create_app(enqueue=queue, first_seen=seen, forget=forget, settings=WebSettings(hubspot_app_secret=SECRET)))
    queue.fail = True
    assert post_hubspot(base, [event(5, 501)]).status_code == 503
    queue.fail = False
    assert post_hubspot(base, [event(5, 501)]).json()["enqueued"] == 1  # HubSpot's retry of the same event
    assert queue.ids == ["501"]


# =============================================================================== Salesforce over HTTP


def outbound_message(org: str = ORG, notifications: list[tuple[str, str]] | None = None, sobject_type: str = "Lead") -> bytes:
    items = notifications if notifications is not None else [("04l5g000001AAAAAA1", "00Q5g000001AbCdEAA")]
    entries = "".join(
        f"""
      <Notification>
        <Id>{nid}</Id>
        <sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
          <sf:Id>{rid}</sf:Id>
          <sf:Company>Nordwerk GmbH</sf:Company>
        </sObject>
      </Notification>"""
        for nid, rid in items
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <soapenv:Body>
    <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
      <OrganizationId>{org}</OrganizationId>
      <ActionId>04k5g000000AAAAAA2</ActionId>
      <SessionId xsi:nil="true"/>
      <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/59.0/00D5g000004ABCD</EnterpriseUrl>
      <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/59.0/00D5g000004ABCD</PartnerUrl>{entries}
    </notifications>
  </soapenv:Body>
</soapenv:Envelope>
""".encode()


def post_salesforce(base: str, body: bytes) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    return requests.post(base + "/webhooks/salesforce", data=body, headers=headers, timeout=10)


@pytest.fixture
def salesforce(serve: Serve, queue: Queue, seen: Seen) -> str:
    return serve(create_app(enqueue=queue, first_seen=seen, settings=WebSettings(salesforce_org_ids=frozenset({ORG}))))


def test_an_outbound_message_is_enqueued_and_acknowledged_with_the_soap_ack(salesforce: str, queue: Queue) -> None:
    body = outbound_message(
        notifications=[("04l000000000001AAA", "00Q000000000001AAA"), ("04l000000000002AAA", "00Q000000000002AAA")]
    )
    response = post_salesforce(salesforce, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    envelope = ElementTree.fromstring(response.content)
    assert envelope.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    assert [child.tag for child in envelope] == ["{http://schemas.xmlsoap.org/soap/envelope/}Body"]
    ack = ElementTree.fromstring(response.content).find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body/{http://soap.sforce.com/2005/09/outbound}notificationsResponse/"
        "{http://soap.sforce.com/2005/09/outbound}Ack"
    )
    assert ack is not None and ack.text == "true"
    assert queue.calls == [("salesforce", ["00Q000000000001AAA", "00Q000000000002AAA"], "outbound-message")]


def test_a_redelivered_notification_is_acknowledged_but_enqueued_once(salesforce: str, queue: Queue) -> None:
    assert post_salesforce(salesforce, outbound_message()).text == SALESFORCE_ACK
    again = post_salesforce(salesforce, outbound_message())
    assert again.status_code == 200 and again.text == SALESFORCE_ACK  # ack, or Salesforce keeps retrying
    assert queue.ids == ["00Q5g000001AbCdEAA"]


def test_a_message_from_another_org_is_refused(salesforce: str, queue: Queue) -> None:
    response = post_salesforce(salesforce, outbound_message(org="00D000000000666AAA"))
    assert response.status_code == 403
    assert "OrganizationId" in response.text
    assert queue.calls == []


def test_a_15_character_org_id_in_the_settings_matches_the_18_character_one_sent(serve: Serve, queue: Queue, seen: Seen) -> None:
    base = serve(
        create_app(enqueue=queue, first_seen=seen, settings=WebSettings.from_env({"SALESFORCE_ORG_ID": f"{ORG[:15]}, 00D1"}))
    )
    assert post_salesforce(base, outbound_message()).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"<not-xml", 400, "XML"),
        (b"<html><body>hi</body></html>", 400, "SOAP"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">&lol2;</soapenv:Envelope>',
            400,
            "XML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">&xxe;</soapenv:Envelope>',
            400,
            "XML",
        ),
        (
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>',
            400,
            "notifications",
        ),
        (outbound_message(notifications=[(f"04l{i:015d}", f"00Q{i:015d}") for i in range(101)]), 413, "exceed 100"),
        (outbound_message(sobject_type="Contact"), 400, "sObject type Contact is not routed"),
        (outbound_message(notifications=[("", "00Q000000000001AAA")]), 400, "lacks Id"),
    ],
)
def test_bad_outbound_messages_are_refused_and_nothing_is_enqueued(
    salesforce: str, queue: Queue, body: bytes, status: int, reason: str
) -> None:
    response = post_salesforce(salesforce, body)
    assert response.status_code == status
    assert reason in response.text
    assert queue.calls == []


def test_without_an_allowed_org_outbound_messages_are_unavailable(serve: Serve, queue: Queue, seen: Seen) -> None:
    base = serve(create_app(enqueue=queue, first_seen=seen, settings=WebSettings()))
    response = post_salesforce(base, outbound_message())
    assert response.status_code == 503 and "SALESFORCE_ORG_ID" in response.text
    assert queue.calls == []


# =============================================================================== health and metrics


def test_healthz_reports_each_check_and_fails_if_any_fails(serve: Serve, queue: Queue, seen: Seen) -> None:
    healthy = serve(create_app(enqueue=queue, first_seen=seen, health_checks={"redis": lambda: True, "broker": lambda: True}))
    response = requests.get(healthy + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert set(response.json()["checks"]) == {"redis", "broker"}

    def broker() -> bool:
        raise ConnectionError("cannot reach redis://:hunter2-broker@broker.internal:6379/1")

    def slow() -> bool:
        time.sleep(2)
        return True

    settings = WebSettings(health_timeout=0.5)
    sick = serve(
        create_app(
            enqueue=queue,
            first_seen=seen,
            settings=settings,
            health_checks={"redis": lambda: True, "broker": broker, "crm": slow, "disk": lambda: False},
        )
    )
    response = requests.get(sick + "/healthz", timeout=10)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is True
    assert checks["broker"]["ok"] is False and "ConnectionError" in checks["broker"]["error"]
    assert "hunter2-broker" not in response.text  # credentials in error text are masked
    assert checks["crm"] == {"ok": False, "error": "timed out after 0.5s", "ms": checks["crm"]["ms"]}
    assert checks["disk"]["ok"] is False


def test_metrics_serves_prometheus_text_including_webhook_counters(hubspot: str) -> None:
    post_hubspot(hubspot, [event(1, 101)])
    post_hubspot(hubspot, [event(2, 102)], secret="forged")
    response = requests.get(hubspot + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "leadroute_webhook_requests_total" and s.labels.get("source") == "hubspot"
    }
    assert samples[("leadroute_webhook_requests_total", "accepted")] >= 1
    assert samples[("leadroute_webhook_requests_total", "bad_signature")] >= 1


SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from worker.observability import metrics
    from worker.web.receivers import WebSettings, create_app
    metrics.record_decision("emea", "rep", 1)  # the web process records too
    app = create_app(enqueue=lambda *a: None, first_seen=lambda ns, i: True, settings=WebSettings())
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, lifespan="off")
    """
)
WORKER = "from worker.observability import metrics; import sys; metrics.record_decision('emea', 'rep', int(sys.argv[1]))"


def test_metrics_aggregate_across_processes_in_multiprocess_mode(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in ("2", "3"):  # two worker processes, already exited
        subprocess.run([sys.executable, "-c", WORKER, n], env=env, cwd=ROOT, check=True, timeout=60)
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise
                time.sleep(0.1)
        values = {
            s.name: s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
            if s.labels == {"rule": "emea", "outcome": "rep"}
        }
        assert values["leadroute_decisions_total"] == 6  # 2 + 3 from the workers, 1 from the web process
    finally:
        web.terminate()
        web.wait(10)
