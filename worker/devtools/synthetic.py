"""Synthetic, realistic leads for ``leadroute demo``, benchmarks and end-to-end tests.

Leads are produced as canonical field dicts and turned into CRM records through the
connector's own field map, so what goes into the sandbox is exactly what comes back out.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elif", "Finn", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luca", "Maya",
         "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yara", "Zoe"]
LAST = ["Schmidt", "Dubois", "Garcia", "Kowalski", "Okafor", "Tanaka", "Silva", "Novak", "Berg", "Rossi", "Kim",
        "Patel", "Murphy", "Jensen", "Costa", "Meyer"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Stark Logistics", "Wayne Health", "Hooli", "Vandelay",
             "Soylent", "Tyrell", "Cyberdyne", "Wonka Foods", "Aperture", "Massive Dynamic", "Nakatomi"]
PLACES = [
    ("US", "California", "94105"), ("US", "NY", "10001"), ("US", "Texas", "73301"), ("USA", "WA", "98101"),
    ("United States", "FL", "33101"), ("US", "Ohio", "43004"), ("Canada", "Ontario", "M5V 2T6"),
    ("Deutschland", "", "10115"), ("Germany", "Bayern", "80331"), ("France", "", "75001"),
    ("United Kingdom", "", "EC1A 1BB"), ("UK", "", "SW1A 1AA"), ("Netherlands", "", "1012"), ("Spain", "", "28001"),
    ("Japan", "", "100-0001"), ("Brasil", "", "01000-000"), ("Atlantis", "", ""),
]
INDUSTRIES = ["Software", "Healthcare", "Hospital & Health Care", "Fintech", "Retail", "Manufacturing", "Media"]
SOURCES = ["Demo Request", "Web Form", "Webinar", "Partner Referral", "Purchased List", "Event"]
SIZES = ["8", "25", "60", "99", "100", "250", "500", "999", "1,000", "2500", "5k+", "12000", "", "lots"]
TITLES = ["CTO", "VP Sales", "Head of IT", "Founder", "Director of Engineering", "Intern", "COO", "Owner"]


def synthetic_leads(n: int, seed: int = 7, start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` canonical leads (``id`` not set: the CRM assigns it); same seed, same leads."""
    rng = random.Random(seed)
    for i in range(start, start + n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(COMPANIES)
        domain = company.lower().replace(" ", "") + ".com"
        if rng.random() < 0.15:
            domain = rng.choice(["gmail.com", "outlook.com", "yahoo.com"])
        country, state, postcode = rng.choice(PLACES)
        yield {
            "first_name": first,
            "last_name": f"{last} {i}",
            "email": f"{first.lower()}.{last.lower()}{i}@{domain}",
            "company": f"{company} {i % 97}",
            "country": country,
            "state": state,
            "postcode": postcode,
            "employees": rng.choice(SIZES),
            "industry": rng.choice(INDUSTRIES),
            "lead_source": rng.choice(SOURCES),
            "score": str(rng.randrange(0, 100)),
            "title": rng.choice(TITLES),
        }


def to_crm_fields(lead: Mapping[str, Any], field_map: Mapping[str, str], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A CRM record body from a canonical lead, through a connector's CRM field -> canonical map."""
    reverse = {canonical: crm_field for crm_field, canonical in field_map.items()}
    body = {reverse[k]: v for k, v in lead.items() if k in reverse and k != "id" and v not in ("", None)}
    body.update(extra)
    return body


NUMERIC = ("employees", "annual_revenue", "score")


def _crm_ready(lead: Mapping[str, Any]) -> dict[str, Any]:
    """CRMs reject text in numeric fields: keep plain numbers, drop the rest (left unknown)."""
    out = dict(lead)
    for name in NUMERIC:
        if name in out:
            text = str(out[name]).replace(",", "").strip()
            if text.isdigit():
                out[name] = int(text)
            else:
                out.pop(name)
    return out


def salesforce_lead(lead: Mapping[str, Any], field_map: Mapping[str, str], owner_id: str) -> dict[str, Any]:
    """A Salesforce Lead body: required LastName/Company, owned by the intake queue."""
    return to_crm_fields(_crm_ready(lead), field_map, {
        "FirstName": lead.get("first_name"), "LastName": lead.get("last_name") or "Unknown",
        "Company": lead.get("company") or "Unknown", "Status": "Open - Not Contacted", "OwnerId": owner_id,
    })


def hubspot_contact(lead: Mapping[str, Any], field_map: Mapping[str, str]) -> dict[str, Any]:
    """HubSpot contact properties (every property is text), new and unowned."""
    props = to_crm_fields(_crm_ready(lead), field_map, {
        "firstname": lead.get("first_name"), "lastname": lead.get("last_name"), "hs_lead_status": "NEW",
    })
    return {k: str(v) for k, v in props.items() if v is not None}
