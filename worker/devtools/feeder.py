"""One synthetic lead feeder: leads into the sandbox CRM as a batch or at a steady rate.

Leads are canonical field dicts (:func:`worker.devtools.synthetic.synthetic_leads`) turned into
CRM records through the routing config's own field maps. They go in

* through the sandbox admin API (:meth:`LeadFeeder.load`, :meth:`LeadFeeder.stream`): no API
  quota spent, a whole batch in one request, on one keep-alive HTTPS connection; Salesforce
  leads are owned by the intake queue, HubSpot contacts by nobody, as intake expects;
* or as an integration would create them, through the CRM APIs with the real client libraries
  (:meth:`LeadFeeder.create_through_apis`: sObject Collections of 200, one HubSpot create each).

``leadroute demo`` streams leads into both CRMs, ``bench/e2e.py`` streams them into HubSpot (each
followed by its webhook) and loads its backlogs, and the end-to-end tests use all three.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import requests

from worker.devtools.synthetic import hubspot_contact, salesforce_lead

SANDBOX_INTAKE_QUEUE = "00G5e000000InTkEAK"  # the sandbox seed's Lead Intake queue
OBJECTS = {"salesforce": "Lead", "hubspot": "contacts"}
SALESFORCE_COLLECTION = 200  # records per sObject Collections call


class LeadFeeder:
    """Synthetic leads into the sandbox behind ``sandbox`` (a :class:`sandbox.run.SandboxInfo`),
    as CRM records mapped by ``config`` (a :class:`worker.config.RoutingConfig`)."""

    def __init__(self, sandbox: Any, config: Any, *, intake_queue: str = SANDBOX_INTAKE_QUEUE) -> None:
        self.sandbox = sandbox
        self.intake_queue = intake_queue
        self.field_maps = {crm: dict(settings.fields) for crm, settings in config.model.connectors.enabled().items()}
        self._session: Any = None

    @property
    def crms(self) -> tuple[str, ...]:
        """The CRMs the config has a connector for, Salesforce first."""
        return tuple(self.field_maps)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> LeadFeeder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- records

    def record(self, crm: str, lead: Mapping[str, Any]) -> dict[str, Any]:
        """The admin API's record for a canonical lead: a Salesforce Lead body, or ``{"properties": ...}``."""
        if crm == "salesforce":
            return salesforce_lead(lead, self.field_maps[crm], self.intake_queue)
        if crm == "hubspot":
            return {"properties": hubspot_contact(lead, self.field_maps[crm])}
        raise ValueError(f"unknown CRM {crm!r}")

    def records(self, crm: str, leads: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [self.record(crm, lead) for lead in leads]

    # -- through the admin API

    def load(self, crm: str, leads: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create ``leads`` in ``crm`` in one admin request; their ids, in order."""
        return self.load_records(crm, self.records(crm, leads))

    def load_records(self, crm: str, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create records made by :meth:`record` in one admin request; their ids, in order."""
        response = self._admin().post(f"{self.sandbox.admin_url}/{crm}/{OBJECTS[crm]}", json={"records": list(records)},
                                      timeout=60)
        response.raise_for_status()
        return [str(i) for i in response.json()["ids"]]

    def stream(self, leads: Iterable[Mapping[str, Any]], *, rate: float, crms: Sequence[str] | None = None,
               count: int | None = None, on_created: Callable[[str, str], Any] | None = None,
               on_error: Callable[[Exception], Any] | None = None) -> Stream:
        """Leads created one at a time at ``rate`` per second, taking turns over ``crms`` (default:
        every configured CRM). ``run()`` it here or ``start()`` it in a thread of its own."""
        return Stream(self, leads, rate=rate, crms=tuple(crms or self.crms), count=count, on_created=on_created,
                      on_error=on_error)

    def _admin(self) -> Any:
        if self._session is None:
            session = requests.Session()
            session.verify = str(self.sandbox.ca_bundle)
            session.trust_env = False  # REQUESTS_CA_BUNDLE or a proxy would override ours
            self._session = session
        return self._session

    # -- through the CRM APIs

    def create_through_apis(self, leads: Iterable[Mapping[str, Any]],
                            crms: Sequence[str] = ("salesforce", "hubspot")) -> dict[str, list[str]]:
        """Create every lead in each of ``crms`` with the real client libraries (not the admin API)."""
        batch = list(leads)
        return {crm: (self._salesforce_api(batch) if crm == "salesforce" else self._hubspot_api(batch)) for crm in crms}

    def _salesforce_api(self, leads: list[Mapping[str, Any]]) -> list[str]:
        # the CRM client libraries load slowly and only this path needs them
        from simple_salesforce import Salesforce

        env = self.sandbox.env()
        session = requests.Session()
        session.verify = str(self.sandbox.ca_bundle)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        token = session.post(f"{env['SALESFORCE_LOGIN_URL']}/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": env["SALESFORCE_CLIENT_ID"],
            "client_secret": env["SALESFORCE_CLIENT_SECRET"],
        })
        token.raise_for_status()
        sf = Salesforce(instance_url=self.sandbox.salesforce_instance_url, session_id=str(token.json()["access_token"]),
                        session=session, version=env["SALESFORCE_API_VERSION"])
        ids: list[str] = []
        for start in range(0, len(leads), SALESFORCE_COLLECTION):
            records = [{"attributes": {"type": "Lead"}, **self.record("salesforce", lead)}
                       for lead in leads[start:start + SALESFORCE_COLLECTION]]
            result = sf.restful("composite/sobjects", method="POST", data=json.dumps({"allOrNone": True, "records": records}),
                                headers={"Sforce-Auto-Assign": "FALSE"})
            ids.extend(r["id"] for r in result)
        session.close()
        return ids

    def _hubspot_api(self, leads: list[Mapping[str, Any]]) -> list[str]:
        # the CRM client libraries load slowly and only this path needs them
        from hubspot import HubSpot
        from hubspot.crm.contacts import SimplePublicObjectInputForCreate

        hs = HubSpot(access_token=self.sandbox.env()["HUBSPOT_ACCESS_TOKEN"], host=self.sandbox.hubspot_base_url,
                     ssl_ca_cert=str(self.sandbox.ca_bundle))
        return [str(hs.crm.contacts.basic_api.create(
                    SimplePublicObjectInputForCreate(properties=self.record("hubspot", lead)["properties"])).id)
                for lead in leads]


class Stream:
    """Leads created one at a time through the admin API on an open-loop schedule: lead ``i`` is
    due ``i / rate`` seconds after the start, however long the earlier ones took.

    ``on_created(crm, id)`` runs after each one; an exception from a create or from it ends the
    stream unless ``on_error`` takes it (then the stream goes on). The stream ends when the leads
    (or ``count`` of them) run out or :meth:`stop` is called.
    """

    def __init__(self, feeder: LeadFeeder, leads: Iterable[Mapping[str, Any]], *, rate: float, crms: Sequence[str],
                 count: int | None = None, on_created: Callable[[str, str], Any] | None = None,
                 on_error: Callable[[Exception], Any] | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not crms:
            raise ValueError("no CRM to feed")
        self.feeder = feeder
        self.leads = iter(leads) if count is None else itertools.islice(leads, count)
        self.rate = rate
        self.crms = tuple(crms)
        self.on_created = on_created
        self.on_error = on_error
        self.created: list[tuple[str, str]] = []  # (crm, id), in order
        self.errors = 0
        self.started = time.time()
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def count(self) -> int:
        """How many leads have been created so far."""
        return len(self.created)

    @property
    def achieved_rate(self) -> float:
        return len(self.created) / self.elapsed if self.elapsed > 0 else 0.0

    def run(self) -> Stream:
        begin = time.monotonic()
        self.started = time.time()
        try:
            for i, lead in enumerate(self.leads):
                delay = begin + i / self.rate - time.monotonic()
                if self._stop.wait(delay) if delay > 0 else self._stop.is_set():
                    break
                crm = self.crms[i % len(self.crms)]
                try:
                    (lead_id,) = self.feeder.load(crm, [lead])
                    self.created.append((crm, lead_id))
                    if self.on_created is not None:
                        self.on_created(crm, lead_id)
                except Exception as exc:
                    if self.on_error is None:
                        raise
                    self.errors += 1
                    self.on_error(exc)
        finally:
            self.elapsed = time.monotonic() - begin
        return self

    def start(self, name: str = "lead-feeder") -> Stream:
        """Run in a daemon thread; :meth:`stop` ends it."""
        self._thread = threading.Thread(target=self.run, daemon=True, name=name)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait until a started stream has ended; whether it has."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        """End the stream (the lead being created is finished first) and wait for its thread."""
        self._stop.set()
        self.join(timeout)
