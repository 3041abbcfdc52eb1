"""Salesforce pieces that need no server: SOQL rendering, credentials from the environment, JWT."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.base import ConnectorConfigError
from connectors.salesforce import SalesforceCredentials, parse_sf_datetime, soql_condition, soql_literal
from connectors.settings import Condition


def render(data: object) -> str:
    return soql_condition(Condition.model_validate(data))


@pytest.mark.parametrize(
    ("condition", "soql"),
    [
        ({"field": "Status", "eq": "Open - Not Contacted"}, "Status = 'Open - Not Contacted'"),
        ({"field": "IsConverted", "eq": False}, "IsConverted = false"),
        ({"field": "OwnerId", "in": ["00G1", "0051"]}, "OwnerId IN ('00G1', '0051')"),
        ({"field": "Status", "not_in": ["New"]}, "Status NOT IN ('New')"),
        ({"field": "Status", "not_in": ["New", ""]}, "(Status NOT IN ('New') AND Status != null)"),
        ({"field": "Status", "in": ["New", None]}, "(Status IN ('New') OR Status = null)"),
        ({"field": "First_Touch__c", "exists": True}, "First_Touch__c != null"),
        ({"field": "OwnerId", "eq": None}, "OwnerId = null"),
        ({"field": "Score__c", "gte": 80, "lt": 100}, "(Score__c >= 80 AND Score__c < 100)"),
        ({"field": "CreatedDate", "gt": "2024-01-01T00:00:00Z"}, "CreatedDate > 2024-01-01T00:00:00Z"),
        ({"field": "Company", "eq": "O'Reilly \\ Sons"}, "Company = 'O\\'Reilly \\\\ Sons'"),
        (
            {"all": [{"field": "IsConverted", "eq": False},
                     {"any": [{"field": "OwnerId", "eq": "00G1"}, {"field": "Status", "eq": "New"}]}]},
            "(IsConverted = false AND (OwnerId = '00G1' OR Status = 'New'))",
        ),
    ],
)
def test_soql_rendering(condition: object, soql: str) -> None:
    assert render(condition) == soql


def test_literals_cannot_inject() -> None:
    assert soql_literal("x' OR Id != null OR Name = '") == "'x\\' OR Id != null OR Name = \\''"


def test_salesforce_datetimes() -> None:
    assert parse_sf_datetime("2024-05-01T12:00:00.000+0000") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_sf_datetime("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_sf_datetime(None) is None and parse_sf_datetime("nope") is None


BASE = {"SALESFORCE_LOGIN_URL": "https://127.0.0.1:8443/", "SALESFORCE_CLIENT_ID": "cid"}


def test_flow_inference() -> None:
    creds = SalesforceCredentials.from_env({**BASE, "SALESFORCE_CLIENT_SECRET": "csecret-123"})
    assert creds.flow == "client_credentials" and creds.login_url == "https://127.0.0.1:8443"
    assert creds.token_request() == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret-123"}
    pw = SalesforceCredentials.from_env({**BASE, "SALESFORCE_CLIENT_SECRET": "csecret-123", "SALESFORCE_USERNAME": "u@x",
                                         "SALESFORCE_PASSWORD": "pass-word", "SALESFORCE_SECURITY_TOKEN": "TOKEN123"})
    assert pw.flow == "password" and pw.token_request()["password"] == "pass-wordTOKEN123"
    assert "pass-word" not in repr(pw) and "csecret" not in repr(pw)


def test_missing_credentials_are_named() -> None:
    with pytest.raises(ConnectorConfigError, match="no Salesforce credentials"):
        SalesforceCredentials.from_env({})
    with pytest.raises(ConnectorConfigError, match="needs SALESFORCE_CLIENT_SECRET"):
        SalesforceCredentials.from_env({**BASE, "SALESFORCE_AUTH_FLOW": "client_credentials"})
    with pytest.raises(ConnectorConfigError, match="not one of"):
        SalesforceCredentials.from_env({**BASE, "SALESFORCE_AUTH_FLOW": "magic"})
    with pytest.raises(ConnectorConfigError, match="LEADROUTE_CA_BUNDLE"):
        SalesforceCredentials.from_env({**BASE, "SALESFORCE_CLIENT_SECRET": "x", "LEADROUTE_CA_BUNDLE": "/nonexistent"})


def test_jwt_bearer_assertion(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file = tmp_path / "server.key"
    key_file.write_bytes(pem)
    creds = SalesforceCredentials.from_env({
        "SALESFORCE_LOGIN_URL": "https://login.salesforce.com",
        "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer",
        "SALESFORCE_USERNAME": "integration@acme.com",
        "SALESFORCE_PRIVATE_KEY_FILE": str(key_file),
    })
    assert creds.flow == "jwt"
    form = creds.token_request()
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(form["assertion"], key.public_key(), algorithms=["RS256"], audience="https://login.salesforce.com")
    assert claims["iss"] == "3MVG9-consumer" and claims["sub"] == "integration@acme.com"
    assert 0 < claims["exp"] - datetime.now(UTC).timestamp() <= 180
