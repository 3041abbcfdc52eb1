"""HubSpot pieces that need no server: search filter groups, datetimes, credentials, 429 waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import ConnectorConfigError
from connectors.hubspot import HubSpotCredentials, _rate_limit_wait, filter_groups, parse_hs_datetime
from connectors.settings import Condition

TIME = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1700000000000"}


def groups(data: object, extra: list[dict[str, str]] | None = None) -> list[dict[str, object]] | None:
    return filter_groups(Condition.model_validate(data), extra or [])


def test_default_intake_is_one_filter() -> None:
    assert groups({"field": "hubspot_owner_id", "exists": False}, [TIME]) == [
        {"filters": [TIME, {"propertyName": "hubspot_owner_id", "operator": "NOT_HAS_PROPERTY"}]}
    ]


def test_or_becomes_groups_each_with_the_time_filter() -> None:
    out = groups({"any": [{"field": "a", "eq": 1}, {"field": "b", "in": ["x", "y"]}]}, [TIME])
    assert out == [
        {"filters": [TIME, {"propertyName": "a", "operator": "EQ", "value": "1"}]},
        {"filters": [TIME, {"propertyName": "b", "operator": "IN", "values": ["x", "y"]}]},
    ]


def test_negative_tests_also_match_missing_values() -> None:
    # not_in without "" matches a missing value locally, so the CRM query must include it too
    out = groups({"field": "hs_lead_status", "not_in": ["NEW"]})
    assert out == [
        {"filters": [{"propertyName": "hs_lead_status", "operator": "NOT_IN", "values": ["NEW"]}]},
        {"filters": [{"propertyName": "hs_lead_status", "operator": "NOT_HAS_PROPERTY"}]},
    ]
    assert groups({"field": "hs_lead_status", "not_in": ["NEW", ""]}) == [
        {"filters": [{"propertyName": "hs_lead_status", "operator": "NOT_IN", "values": ["NEW"]},
                     {"propertyName": "hs_lead_status", "operator": "HAS_PROPERTY"}]},
    ]


def test_too_big_for_hubspot_falls_back_to_local_filtering() -> None:
    wide = {"all": [{"any": [{"field": f"p{i}", "eq": 1}, {"field": f"q{i}", "eq": 2}]} for i in range(3)]}
    assert groups(wide) is None  # 8 groups > 5
    assert filter_groups(None, [TIME]) == [{"filters": [TIME]}]
    assert filter_groups(None, []) == []


def test_hubspot_datetimes() -> None:
    assert parse_hs_datetime("2024-05-01T12:00:00.123Z") == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert parse_hs_datetime("1714564800000") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_hs_datetime("") is None


def test_credentials() -> None:
    with pytest.raises(ConnectorConfigError, match="HUBSPOT_ACCESS_TOKEN"):
        HubSpotCredentials.from_env({})
    creds = HubSpotCredentials.from_env({"HUBSPOT_ACCESS_TOKEN": "pat-na1-secret-value", "HUBSPOT_API_BASE": "https://h:1/"})
    assert creds.api_base == "https://h:1" and "secret" not in repr(creds)


def test_429_waits() -> None:
    assert _rate_limit_wait({"retry-after": "3"}, "TEN_SECONDLY_ROLLING") == 3.0
    assert _rate_limit_wait({}, "SECONDLY") == 1.0
    assert _rate_limit_wait({"x-hubspot-ratelimit-interval-milliseconds": "10000"}, "TEN_SECONDLY_ROLLING") == 1.0
    assert _rate_limit_wait({}, "DAILY") == 3600.0
