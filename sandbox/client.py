"""A small client for the sandbox admin API (tests, benchmarks, ``leadroute demo``).

Uses only the standard library with the sandbox CA passed explicitly, so it works whatever
``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` say in the environment.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class AdminError(Exception):
    """The admin API refused a request; ``status`` and ``body`` say why."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"sandbox admin API answered {status}: {body}")
        self.status = status
        self.body = body


class AdminClient:
    """Thin wrappers over ``/__sandbox/...``; every method returns the decoded JSON answer."""

    def __init__(self, admin_url: str, ca_bundle: Path | str) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=str(ca_bundle))

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=60) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail: Any = json.loads(raw)
            except ValueError:
                detail = raw.decode("utf-8", "replace")
            raise AdminError(exc.code, detail) from None
        return json.loads(raw) if raw else None

    # state and data
    def state(self) -> Any:
        return self.request("GET", "/state")

    def reset(self, seed: dict[str, Any] | None = None) -> Any:
        return self.request("POST", "/reset", {"seed": seed} if seed is not None else {})

    def generate(self, **spec: Any) -> Any:
        """e.g. ``generate(salesforce={"Lead": 10000}, hubspot={"contacts": 10000})``."""
        return self.request("POST", "/generate", spec)

    # counters, faults, limits, sessions
    def counters(self) -> Any:
        return self.request("GET", "/counters")

    def clear_counters(self) -> Any:
        return self.request("DELETE", "/counters")

    def faults(self) -> Any:
        return self.request("GET", "/faults")

    def set_faults(self, **settings: Any) -> Any:
        """Replace the fault configuration (everything not given is switched off)."""
        return self.request("PUT", "/faults", settings)

    def patch_faults(self, **settings: Any) -> Any:
        return self.request("PATCH", "/faults", settings)

    def clear_faults(self) -> Any:
        return self.request("DELETE", "/faults")

    def script_fault(self, kind: str, *, api: str | None = None, endpoint: str | None = None, count: int = 1,
                     ids: list[str] | None = None) -> Any:
        """Make the next ``count`` matching requests fail with ``kind`` (503, 429, drop, ...)."""
        body: dict[str, Any] = {"kind": kind, "count": count}
        if api:
            body["api"] = api
        if endpoint:
            body["endpoint"] = endpoint
        if ids:
            body["ids"] = ids
        return self.request("POST", "/faults/scripted", body)

    def limits(self) -> Any:
        return self.request("GET", "/limits")

    def set_limits(self, **sections: dict[str, Any]) -> Any:
        """e.g. ``set_limits(hubspot={"search_per_second": 1000})``."""
        return self.request("PATCH", "/limits", sections)

    def reset_usage(self) -> Any:
        return self.request("POST", "/limits/reset-usage")

    def expire_sessions(self) -> Any:
        return self.request("POST", "/salesforce/expire-sessions")

    def start_recording(self) -> Any:
        """Record every API request/response from now on (``stop_recording`` returns them)."""
        return self.request("POST", "/recording")

    def recording(self) -> list[dict[str, Any]]:
        return self.request("GET", "/recording")["exchanges"]

    def stop_recording(self) -> list[dict[str, Any]]:
        return self.request("DELETE", "/recording")["exchanges"]

    # Salesforce records and rep actions
    def sf_records(self, sobject: str) -> Any:
        return self.request("GET", f"/salesforce/{sobject}")["records"]

    def sf_record(self, sobject: str, record_id: str) -> Any:
        return self.request("GET", f"/salesforce/{sobject}/{record_id}")

    def sf_load(self, sobject: str, records: list[dict[str, Any]]) -> list[str]:
        return self.request("POST", f"/salesforce/{sobject}", {"records": records})["ids"]

    def sf_create(self, sobject: str, fields: dict[str, Any], *, assign: bool = False) -> Any:
        return self.request("POST", f"/salesforce/{sobject}", {**fields, "assign": assign})

    def sf_edit(self, sobject: str, record_id: str, fields: dict[str, Any]) -> Any:
        return self.request("PATCH", f"/salesforce/{sobject}/{record_id}", fields)

    def sf_set_status(self, record_id: str, status: str, sobject: str = "Lead") -> Any:
        return self.request("POST", f"/salesforce/{sobject}/{record_id}/status", {"status": status})

    def sf_log_activity(self, record_id: str, *, type: str = "Call", subject: str | None = None,
                        sobject: str = "Lead", as_user: str | None = None) -> Any:
        body: dict[str, Any] = {"type": type}
        if subject:
            body["subject"] = subject
        if as_user:
            body["as"] = as_user
        return self.request("POST", f"/salesforce/{sobject}/{record_id}/activity", body)

    def sf_change_owner(self, record_id: str, owner_id: str, sobject: str = "Lead") -> Any:
        return self.request("POST", f"/salesforce/{sobject}/{record_id}/owner", {"owner_id": owner_id})

    def sf_convert(self, record_id: str, *, opportunity: bool | dict[str, Any] = True) -> Any:
        """Convert a lead; ``opportunity``: create one (``True``), none (``False``), or one with these fields."""
        return self.request("POST", f"/salesforce/Lead/{record_id}/convert", {"opportunity": opportunity})

    def sf_set_stage(self, opportunity_id: str, stage: str | None = None, *, won: bool | None = None,
                     amount: float | None = None, close_date: str | None = None) -> Any:
        """Move an opportunity to ``stage`` (or Closed Won / Closed Lost by ``won``), with an amount and close date."""
        body: dict[str, Any] = {"stage": stage} if stage is not None else {"won": won} if won is not None else {}
        if amount is not None:
            body["amount"] = amount
        if close_date is not None:
            body["close_date"] = close_date
        return self.request("POST", f"/salesforce/Opportunity/{opportunity_id}/stage", body)

    def seed_pipeline(self, salesforce: dict[str, Any] | None = None, hubspot: dict[str, Any] | None = None
                      ) -> dict[str, list[str]]:
        """Open (and closed) opportunities / deals per owner id: ``{owner: n}`` or ``{owner: {"open": n, "closed": m}}``."""
        body = {k: v for k, v in (("salesforce", salesforce), ("hubspot", hubspot)) if v}
        return self.request("POST", "/pipeline", body)  # type: ignore[no-any-return]

    def sf_delete(self, sobject: str, record_id: str) -> Any:
        return self.request("DELETE", f"/salesforce/{sobject}/{record_id}")

    # HubSpot records and rep actions
    def hs_records(self, otype: str = "contacts") -> Any:
        return self.request("GET", f"/hubspot/{otype}")["results"]

    def hs_record(self, record_id: str, otype: str = "contacts") -> Any:
        return self.request("GET", f"/hubspot/{otype}/{record_id}")

    def hs_load(self, records: list[dict[str, Any]], otype: str = "contacts") -> list[str]:
        return self.request("POST", f"/hubspot/{otype}", {"records": records})["ids"]

    def hs_edit(self, record_id: str, properties: dict[str, Any], otype: str = "contacts") -> Any:
        return self.request("PATCH", f"/hubspot/{otype}/{record_id}", {"properties": properties})

    def hs_set_status(self, record_id: str, status: str) -> Any:
        return self.request("POST", f"/hubspot/contacts/{record_id}/status", {"status": status})

    def hs_log_activity(self, record_id: str, *, type: str = "CALL", body: str | None = None) -> Any:
        payload: dict[str, Any] = {"type": type}
        if body:
            payload["body"] = body
        return self.request("POST", f"/hubspot/contacts/{record_id}/activity", payload)

    def hs_change_owner(self, record_id: str, owner_id: str) -> Any:
        return self.request("POST", f"/hubspot/contacts/{record_id}/owner", {"owner_id": owner_id})

    def hs_convert(self, record_id: str) -> Any:
        return self.request("POST", f"/hubspot/contacts/{record_id}/convert", {})

    def hs_delete(self, record_id: str, otype: str = "contacts") -> Any:
        return self.request("DELETE", f"/hubspot/{otype}/{record_id}")

    def hs_add_deal(self, contact_id: str, **properties: Any) -> Any:
        """Create a deal associated with the contact (``{"deal": ..., "record": contact}``)."""
        return self.request("POST", f"/hubspot/contacts/{contact_id}/deal", {"properties": properties})

    def hs_set_deal_stage(self, deal_id: str, stage: str | None = None, *, won: bool | None = None,
                          amount: float | str | None = None, closedate: str | None = None) -> Any:
        """Move a deal to ``stage`` (or closedwon / closedlost by ``won``), with an amount and close date."""
        body: dict[str, Any] = {"stage": stage} if stage is not None else {"won": won} if won is not None else {}
        if amount is not None:
            body["amount"] = amount
        if closedate is not None:
            body["closedate"] = closedate
        return self.request("POST", f"/hubspot/deals/{deal_id}/stage", body)

