"""Fixtures for the sandbox CRM tests: one sandbox per session, reset before every test.

Clients are the real libraries pointed at the sandbox: a ``requests.Session`` with the sandbox
CA for simple-salesforce (``trust_env`` off, because ``REQUESTS_CA_BUNDLE`` in the environment
would otherwise override ``verify=``), and ``HubSpot(host=..., ssl_ca_cert=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce
from urllib3.util.retry import Retry

from sandbox.client import AdminClient
from sandbox.run import SandboxInfo, running

SARAH_SF, MIKE_SF, FORMER_SF = "0055e000001AbCdAAK", "0055e000001MiKeAAK", "0055e000001FoRmAAK"
TRIAGE_SF, INTAKE_SF, PARTNERS_SF = "00G5e000000TrIaEAK", "00G5e000000InTkEAK", "00G5e000000PaRtEAK"
SARAH_HS, MIKE_HS, TRIAGE_HS, ARCHIVED_HS = "51234567", "51234568", "51230000", "51234599"
NO_RETRY = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxInfo]:
    with running() as info:
        yield info


@pytest.fixture
def admin(sandbox: SandboxInfo) -> Iterator[AdminClient]:
    """A freshly seeded sandbox with generous HubSpot limits (tests of the limits lower them)."""
    client = sandbox.admin
    client.reset()
    client.set_limits(hubspot={"search_per_second": 10_000, "ten_second_limit": 100_000})
    yield client
    client.clear_faults()


def http_session(sandbox: SandboxInfo) -> requests.Session:
    session = requests.Session()
    session.verify = str(sandbox.ca_bundle)
    session.trust_env = False
    return session


def login(sandbox: SandboxInfo, session: requests.Session | None = None) -> str:
    """An access token from the OAuth client-credentials flow."""
    session = session or http_session(sandbox)
    resp = session.post(f"{sandbox.salesforce_login_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": sandbox.salesforce_client_id,
        "client_secret": sandbox.salesforce_client_secret})
    resp.raise_for_status()
    return str(resp.json()["access_token"])


@pytest.fixture
def make_sf(sandbox: SandboxInfo, admin: AdminClient) -> Callable[[], Salesforce]:
    def make() -> Salesforce:
        session = http_session(sandbox)
        return Salesforce(session_id=login(sandbox, session), instance_url=sandbox.salesforce_instance_url,
                          session=session, version=sandbox.salesforce_api_version)
    return make


@pytest.fixture
def sf(make_sf: Callable[[], Salesforce]) -> Salesforce:
    """simple-salesforce with a session id (no automatic re-login: expiry raises)."""
    return make_sf()


@pytest.fixture
def sf_auto(sandbox: SandboxInfo, admin: AdminClient) -> Salesforce:
    """simple-salesforce doing its own login (so it re-logs in on INVALID_SESSION_ID)."""
    return Salesforce(consumer_key=sandbox.salesforce_client_id, consumer_secret=sandbox.salesforce_client_secret,
                      domain=sandbox.salesforce_domain, session=http_session(sandbox),
                      version=sandbox.salesforce_api_version)


@pytest.fixture
def hs(sandbox: SandboxInfo, admin: AdminClient) -> HubSpot:
    """hubspot-api-client with urllib3's own retries off (as the connector builds it), so a 429
    surfaces as ``ApiException`` instead of being retried after ``Retry-After``."""
    return HubSpot(access_token=sandbox.hubspot_access_token, host=sandbox.hubspot_base_url,
                   ssl_ca_cert=str(sandbox.ca_bundle), retry=NO_RETRY)


def calls(admin: AdminClient, endpoint: str, status: str = "total") -> int:
    return int(admin.counters()["endpoints"].get(endpoint, {}).get(status, 0))


def sf_error(exc: Any) -> dict[str, Any]:
    """The first ``{message, errorCode}`` of a simple-salesforce exception."""
    return exc.content[0]  # type: ignore[no-any-return]
