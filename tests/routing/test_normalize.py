"""Specification of lead normalisation: how what leads really contain becomes comparable.

Every parser is total: a value that cannot be read is unknown (None), never an exception,
and ``normalize_lead`` names the fields that were present but unreadable.
"""

from __future__ import annotations

import math
import socket
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import domains
from worker.domain import normalize
from worker.domain.normalize import (
    CANONICAL_FIELDS,
    NormalizedLead,
    country_code,
    domain_of,
    is_blank,
    is_free_mail,
    language_code,
    normalize_lead,
    parse_count,
    parse_datetime,
    parse_money,
    parse_number,
    region_code,
)

# --------------------------------------------------------------------------------------
# Countries
# --------------------------------------------------------------------------------------

COUNTRY_FAMILIES = {
    "US": ["US", "us", "USA", "U.S.", "U.S.A.", "United States", "United States of America",
           "united states", "America", "840"],
    "GB": ["GB", "GBR", "UK", "U.K.", "United Kingdom", "Great Britain", "Britain", "England",
           "Scotland", "Wales", "Northern Ireland"],
    "DE": ["DE", "DEU", "Germany", "Deutschland", "deutschland", "GERMANY", "276"],
    "NL": ["NL", "NLD", "Netherlands", "The Netherlands", "Holland", "Nederland"],
    "ES": ["ES", "ESP", "Spain", "España", "Espana", "ESPAÑA"],
    "CH": ["CH", "CHE", "Switzerland", "Schweiz", "Suisse", "Svizzera"],
    "AT": ["AT", "AUT", "Austria", "Österreich", "Osterreich", "Oesterreich"],
    "BR": ["BR", "BRA", "Brazil", "Brasil"],
    "RU": ["RU", "RUS", "Russia", "Russian Federation", "Россия"],
    "KR": ["KR", "KOR", "South Korea", "Korea", "Korea, Republic of", "Republic of Korea"],
    "CZ": ["CZ", "Czechia", "Czech Republic", "Česko"],
    "TR": ["TR", "Turkey", "Türkiye", "Turkiye"],
    "AE": ["AE", "UAE", "United Arab Emirates"],
    "CI": ["CI", "Côte d'Ivoire", "Cote d'Ivoire", "Ivory Coast"],
    "KN": ["KN", "Saint Kitts and Nevis", "St. Kitts & Nevis", "St Kitts and Nevis"],
    "BO": ["BO", "Bolivia", "Plurinational State of Bolivia", "Bolivia, Plurinational State of"],
}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "expected"),
    [(value, code) for code, values in COUNTRY_FAMILIES.items() for value in values],
)
def test_country_names_codes_and_aliases_map_to_iso2(value: str, expected: str) -> None:
    assert country_code(value) == expected


@pytest.mark.parametrize("value", ["  de ", "\tDE\n", "dE", "  united   STATES  ", "u.s.a"])
def test_country_ignores_case_whitespace_and_punctuation(value: str) -> None:
    assert country_code(value) in {"DE", "US"}


def test_every_pycountry_country_is_found_by_code_and_name() -> None:
    import pycountry

    for country in pycountry.countries:
        assert country_code(country.alpha_2) == country.alpha_2
        assert country_code(country.alpha_3) == country.alpha_2
        assert country_code(country.name) == country.alpha_2


@pytest.mark.parametrize("value", [None, "", "   ", "N/A", "Atlantis", "U", "XX", 3.5, True, [], 1000])
def test_country_unknown_or_blank_is_none(value: object) -> None:
    assert country_code(value) is None


def test_namibia_is_not_mistaken_for_a_placeholder() -> None:
    assert country_code("NA") == "NA"
    assert normalize_lead({"country": "NA"}).fields["country"] == "NA"


# --------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [
        ("California", "US", "CA"),
        ("ca", "US", "CA"),
        ("CA", "US", "CA"),
        ("Calif.", "US", "CA"),
        (" new york ", "US", "NY"),
        ("NewYork", "US", "NY"),
        ("Mass.", "US", "MA"),
        ("W. Va.", "US", "WV"),
        ("Washington, D.C.", "US", "DC"),
        ("US-TX", "US", "TX"),
        ("Ontario", "CA", "ON"),
        ("ont.", "CA", "ON"),
        ("Québec", "CA", "QC"),
        ("Quebec", "CA", "QC"),
        ("PQ", "CA", "QC"),
        ("British Columbia", "CA", "BC"),
        ("P.E.I.", "CA", "PE"),
        ("New South Wales", "AU", "NSW"),
        ("nsw", "AU", "NSW"),
        ("Victoria", "AU", "VIC"),
        ("Western Australia", "AU", "WA"),
        ("Washington", "US", "WA"),
        # the country may be given in any spelling
        ("California", "United States", "CA"),
        ("Ontario", "Canada", "ON"),
    ],
)
def test_region_code_by_name_or_code_within_country(value: str, country: str, expected: str) -> None:
    assert region_code(value, country) == expected


def test_region_is_scoped_by_country() -> None:
    # "Ontario" is not a US state: within the US it is unreadable, not a wrong match.
    assert region_code("Ontario", "US") is None
    assert region_code("California", "CA") is None
    assert region_code("Californa", "US") is None


def test_region_without_a_table_is_upper_cased_input() -> None:
    assert region_code(" Bayern ", "DE") == "BAYERN"
    assert region_code("England", "GB") == "ENGLAND"


def test_region_without_country_uses_the_known_tables_else_keeps_input() -> None:
    assert region_code("California", None) == "CA"
    assert region_code("Ontario", None) == "ON"
    assert region_code("CA-QC", None) == "QC"
    assert region_code("wa", None) == "WA"
    assert region_code("Somewhere", None) == "SOMEWHERE"


@pytest.mark.parametrize("value", [None, "", "  ", "N/A"])
def test_region_blank_is_none(value: object) -> None:
    assert region_code(value, "US") is None
    assert region_code(value, "DE") is None


# --------------------------------------------------------------------------------------
# Employees
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1,000", 1000),
        ("1000", 1000),
        (" 1000 ", 1000),
        ("1 000", 1000),
        ("1.000", 1000),  # a count is never fractional: European thousands
        ("1000-5000", 1000),
        ("1,000 - 5,000", 1000),
        ("1,000\u20135,000", 1000),  # en dash
        ("1000 to 5000", 1000),
        ("51-200 employees", 51),
        ("10,001+", 10001),
        ("5k+", 5000),
        ("10K", 10000),
        ("500+", 500),
        ("1.5k", 1500),
        ("1,5k", 1500),
        ("10-50k", 10000),
        ("over 1000", 1000),
        (">1000", 1000),
        ("~200", 200),
        ("ca. 200", 200),
        ("approx. 200", 200),
        ("<50", 0),
        ("under 50", 0),
        ("Self-employed", 1),
        ("\uff11\uff10\uff10\uff10", 1000),  # full-width digits from East Asian forms
        (1000, 1000),
        (1000.0, 1000),
        (Decimal("250"), 250),
        (0, 0),
    ],
)
def test_parse_count_reads_common_formats_as_lower_bound(value: object, expected: int) -> None:
    assert parse_count(value) == expected
    assert isinstance(parse_count(value), int)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "lots", "many", "N/A", "-5", -5, "1000s", "2024-01-05", "five", True, math.nan,
     math.inf, "1e6", "9" * 400, [1000], {"n": 1}],
)  # fmt: skip
def test_parse_count_garbage_is_unknown(value: object) -> None:
    assert parse_count(value) is None


# --------------------------------------------------------------------------------------
# Revenue
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$2.5M", 2_500_000),
        ("2,500,000", 2_500_000),
        ("2500000", 2_500_000),
        ("10m-50m", 10_000_000),
        ("$10-50M", 10_000_000),
        ("1.2B", 1_200_000_000),
        ("£1.2bn", 1_200_000_000),
        ("€3 mio", 3_000_000),
        ("3 Mio. €", 3_000_000),
        ("2,5 Mio. EUR", 2_500_000),
        ("USD 2.5 million", 2_500_000),
        ("$2.5MM", 2_500_000),
        ("3 Mrd. €", 3_000_000_000),
        ("500K", 500_000),
        ("1.234.567,89", 1_234_567.89),
        ("1,234,567.89", 1_234_567.89),
        ("$5M+", 5_000_000),
        (2_500_000, 2_500_000),
        (2.5e6, 2_500_000),
    ],
)
def test_parse_money_reads_common_formats(value: object, expected: float) -> None:
    assert parse_money(value) == pytest.approx(expected)
    assert isinstance(parse_money(value), float)


@pytest.mark.parametrize("value", [None, "", "lots", "$", "-$5M", -1, "ten million", "N/A", math.nan])
def test_parse_money_garbage_is_unknown(value: object) -> None:
    assert parse_money(value) is None


# --------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("85", 85.0), ("85.0", 85.0), (" 72 ", 72.0), ("72,5", 72.5), ("90%", 90.0), ("-3", -3.0),
     (85, 85.0), (72.5, 72.5), (Decimal("7.5"), 7.5)],
)  # fmt: skip
def test_parse_number(value: object, expected: float) -> None:
    assert parse_number(value) == expected
    assert isinstance(parse_number(value), float)


@pytest.mark.parametrize("value", [None, "", "hot", "A+", "nan", "inf", math.nan, math.inf, True, "1,2,3"])
def test_parse_number_garbage_is_unknown(value: object) -> None:
    assert parse_number(value) is None


# --------------------------------------------------------------------------------------
# Domains
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "website", "expected"),
    [
        ("jane@acme.com", None, "acme.com"),
        ("Jane.Doe@ACME.COM", None, "acme.com"),
        (" Jane Doe <jane@acme.com> ", None, "acme.com"),
        ("jane@sales.eu.acme.co.uk", None, "acme.co.uk"),
        ("jane@acme.com.au", None, "acme.com.au"),
        (None, "acme.com", "acme.com"),
        (None, "www.acme.com", "acme.com"),
        (None, "https://www.Acme.co.uk:8443/about?x=1#top", "acme.co.uk"),
        (None, "http://user:pw@shop.acme.de/path", "acme.de"),
        (None, "//cdn.acme.io/x", "acme.io"),
        (None, "WWW.ACME.CO.JP", "acme.co.jp"),
        # the email wins over the website
        ("jane@acme.com", "https://other.org", "acme.com"),
        # free mail gives no company, so the website is tried next
        ("jane@gmail.com", "https://www.acme.de", "acme.de"),
        ("jane@yahoo.co.uk", None, None),
        ("not-an-email", "acme.com", "acme.com"),
    ],
)
def test_domain_of(email: object, website: object, expected: str | None) -> None:
    assert domain_of(email, website) == expected


@pytest.mark.parametrize(
    "website",
    [None, "", "localhost", "http://10.0.0.1/", "http://[::1]:8080/", "acme", "acme.invalidtld",
     "not a url", "https://", 42],
)  # fmt: skip
def test_domain_of_without_a_registrable_domain_is_none(website: object) -> None:
    assert domain_of(website=website) is None


FREE_MAIL = [
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
    "hotmail.com", "hotmail.de", "outlook.com", "outlook.fr", "live.com", "live.co.uk", "msn.com",
    "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com", "gmx.de",
    "gmx.net", "gmx.at", "web.de", "t-online.de", "mail.ru", "yandex.ru", "yandex.com", "qq.com",
    "163.com", "126.com", "zoho.com", "naver.com", "orange.fr", "libero.it", "btinternet.com",
    "comcast.net", "bigpond.net.au", "seznam.cz", "wp.pl", "uol.com.br", "mailinator.com",
]  # fmt: skip


@pytest.mark.parametrize("domain", FREE_MAIL)
def test_free_mail_domains(domain: str) -> None:
    assert is_free_mail(domain)
    assert is_free_mail(domain.upper())
    assert domain_of(f"someone@{domain}") is None
    assert domain_of(f"someone@mx.{domain}") is None  # subdomains of a provider too


def test_the_free_mail_list_is_solid_and_every_entry_is_registrable() -> None:
    listed = normalize._FREE_MAIL_DOMAINS
    assert len(listed) >= 60
    for domain in listed:
        assert is_free_mail(domain)
        assert domain_of(f"x@mail.{domain}") is None


@pytest.mark.parametrize("domain", ["acme.com", "mail.acme.com", "gmail-consulting.com", "webde.com", ""])
def test_company_domains_are_not_free_mail(domain: str) -> None:
    assert not is_free_mail(domain)


def test_suffix_list_is_bundled_and_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker behind a firewall must not stall or fail on the public suffix list."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    extractor = domains._extractor.__wrapped__()  # a fresh one, built with the network cut
    assert extractor.suffix_list_urls == ()
    assert extractor("https://a.b.example.co.uk/x").suffix == "co.uk"
    assert extractor("https://shop.acme.com.br").domain == "acme"


# --------------------------------------------------------------------------------------
# Languages and timestamps
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("English", "en"), ("en", "en"), ("EN", "en"), ("EN-us", "en"), ("en_GB", "en"),
     ("English (US)", "en"), ("Deutsch", "de"), ("German", "de"), ("ger", "de"), ("deu", "de"),
     ("Français", "fr"), ("Español", "es"), ("pt-BR", "pt"), ("Greek", "el"), ("中文", "zh"),
     ("iw", "he"), ("Klingon", "klingon"), (" Elvish ", "elvish")],
)  # fmt: skip
def test_language_code(value: str, expected: str) -> None:
    assert language_code(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-06-03T09:15:00Z", datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),
        ("2024-06-03T09:15:00", datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),  # naive is UTC
        ("2024-06-03 09:15", datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),
        ("2024-06-03", datetime(2024, 6, 3, tzinfo=UTC)),
        (
            "2024-06-03T09:15:00+02:00",
            datetime(2024, 6, 3, 9, 15, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2024-06-03T09:15:00.123456789Z", datetime(2024, 6, 3, 9, 15, 0, 123456, tzinfo=UTC)),
        ("2024-06-03 09:15:00 UTC", datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),
        ("1717406100", datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),
        (1717406100000, datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),  # epoch milliseconds
        (datetime(2024, 6, 3, 9, 15), datetime(2024, 6, 3, 9, 15, tzinfo=UTC)),
    ],
)
def test_parse_datetime_is_always_timezone_aware(value: object, expected: datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("value", [None, "", "yesterday", "2024-13-45", "32/01/2024", math.inf, True])
def test_parse_datetime_unreadable_is_none(value: object) -> None:
    assert parse_datetime(value) is None


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n", math.nan, Decimal("NaN"), "N/A", "null", "-"])
def test_is_blank(value: object) -> None:
    assert is_blank(value)


@pytest.mark.parametrize("value", ["x", "0", 0, 0.0, False, "NA", "None of them"])
def test_is_not_blank(value: object) -> None:
    assert not is_blank(value)


# --------------------------------------------------------------------------------------
# Whole leads
# --------------------------------------------------------------------------------------

TYPICAL = {
    "id": " 00Q5e00000AbCdE ",
    "email": "jane.doe@acme-robotics.de",
    "company": " Acme Robotics GmbH ",
    "website": "https://www.acme-robotics.de/",
    "country": "Deutschland",
    "state": "Bayern",
    "postcode": " 80331 ",
    "employees": "1,000 - 5,000",
    "annual_revenue": "€250 Mio",
    "industry": "Manufacturing",
    "product_interest": "Fleet",
    "lead_source": "Webinar",
    "score": " 72 ",
    "language": "de-DE",
    "title": "Head of Operations",
    "created_at": "2024-06-03T09:15:00+02:00",
    "account_owner": "",
}


def test_normalize_typical_lead() -> None:
    lead = normalize_lead(TYPICAL)
    assert lead == NormalizedLead(
        fields={
            "id": "00Q5e00000AbCdE",
            "email": "jane.doe@acme-robotics.de",
            "company": "Acme Robotics GmbH",
            "website": "https://www.acme-robotics.de/",
            "country": "DE",
            "state": "BAYERN",
            "postcode": "80331",
            "employees": 1000,
            "annual_revenue": 250_000_000.0,
            "industry": "Manufacturing",
            "product_interest": "Fleet",
            "lead_source": "Webinar",
            "score": 72.0,
            "language": "de",
            "title": "Head of Operations",
            "created_at": datetime(2024, 6, 3, 9, 15, tzinfo=timezone(timedelta(hours=2))),
            "domain": "acme-robotics.de",
        },
        unreadable=(),
    )


def test_unreadable_fields_are_reported_and_dropped() -> None:
    lead = normalize_lead(
        {
            "id": "L1",
            "country": "Atlantis",
            "employees": "lots",
            "annual_revenue": "a few",
            "score": "hot",
            "created_at": "yesterday",
        }
    )
    assert lead.fields == {"id": "L1"}
    assert set(lead.unreadable) == {"country", "employees", "annual_revenue", "score", "created_at"}


def test_unknown_state_within_a_known_country_is_unreadable() -> None:
    lead = normalize_lead({"country": "USA", "state": "Ontario"})
    assert lead.fields == {"country": "US"}
    assert lead.unreadable == ("state",)


def test_state_is_resolved_within_the_normalised_country() -> None:
    assert normalize_lead({"country": "Canada", "state": "Québec"}).fields["state"] == "QC"
    assert normalize_lead({"country": "United States", "state": "calif."}).fields["state"] == "CA"
    assert normalize_lead({"state": "Texas"}).fields["state"] == "TX"


def test_blanks_are_removed_not_reported() -> None:
    lead = normalize_lead({"id": "L1", "country": "", "employees": "  ", "score": None, "state": "N/A"})
    assert lead == NormalizedLead(fields={"id": "L1"}, unreadable=())


def test_extra_keys_are_kept_as_trimmed_strings() -> None:
    lead = normalize_lead({"id": "L1", " utm_campaign ": " spring ", "empty": " ", "count": 3})
    assert lead.fields == {"id": "L1", "utm_campaign": "spring", "count": "3"}


def test_header_spellings_map_to_canonical_fields() -> None:
    lead = normalize_lead(
        {"Email": "a@acme.com", "Annual Revenue": "$1M", "NumberOfEmployees": "250", "Zip": "02134",
         "LeadSource": "Web", "CreatedDate": "2024-06-03"}
    )  # fmt: skip
    assert lead.fields["employees"] == 250
    assert lead.fields["annual_revenue"] == 1_000_000.0
    assert lead.fields["postcode"] == "02134"
    assert lead.fields["lead_source"] == "Web"
    assert lead.fields["created_at"] == datetime(2024, 6, 3, tzinfo=UTC)
    assert lead.fields["domain"] == "acme.com"


def test_exact_canonical_key_wins_over_an_alias() -> None:
    assert normalize_lead({"zip": "111", "postcode": "222"}).fields["postcode"] == "222"
    assert normalize_lead({"postcode": "222", "zip": "111"}).fields["postcode"] == "222"


def test_postcode_is_upper_case_and_us_zip_keeps_its_leading_zero() -> None:
    assert normalize_lead({"postcode": " sw1a 1aa "}).fields["postcode"] == "SW1A 1AA"
    assert normalize_lead({"country": "US", "postcode": 2134}).fields["postcode"] == "02134"
    assert normalize_lead({"country": "DE", "postcode": 1067}).fields["postcode"] == "1067"


def test_domain_is_derived_from_email_then_website() -> None:
    assert normalize_lead({"email": "a@gmail.com", "website": "acme.io"}).fields["domain"] == "acme.io"
    assert "domain" not in normalize_lead({"email": "a@gmail.com"}).fields
    assert normalize_lead({"domain": "www.acme.io"}).fields["domain"] == "acme.io"


def test_numeric_ids_stay_text() -> None:
    assert normalize_lead({"id": 42}).fields["id"] == "42"
    assert normalize_lead({"id": 42.0}).fields["id"] == "42"


# --------------------------------------------------------------------------------------
# Properties: total functions
# --------------------------------------------------------------------------------------

field_names = st.one_of(st.sampled_from([*CANONICAL_FIELDS, "domain", "Annual Revenue"]), st.text(max_size=12))
values = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[ $€]?[0-9][0-9,.\s]{0,12}[kKmMbB+]?( ?- ?[0-9,.]{1,8}[kKmM]?)?", fullmatch=True),
    st.sampled_from(["N/A", "USA", "Ontario", "1,000 - 5,000", "jane@gmail.com", "https://x.co.uk/"]),
)
any_values = st.one_of(values, st.none(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans())


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(field_names, values, max_size=20))
def test_normalize_lead_never_raises_on_text(raw: dict[str, str]) -> None:
    lead = normalize_lead(raw)
    assert set(lead.unreadable) <= {*CANONICAL_FIELDS}
    assert len(set(lead.unreadable)) == len(lead.unreadable)
    assert not set(lead.unreadable) & set(lead.fields)
    assert all(not is_blank(v) for v in lead.fields.values())
    if "created_at" in lead.fields:
        created = lead.fields["created_at"]
        assert isinstance(created, datetime) and created.tzinfo is not None


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, any_values, max_size=20))
def test_normalize_lead_never_raises_on_mixed_values(raw: dict[str, object]) -> None:
    normalize_lead(raw)


@settings(max_examples=300, deadline=None)
@given(any_values, st.one_of(st.none(), st.sampled_from(["US", "CA", "AU", "DE", "xx"]), st.text(max_size=5)))
def test_parsers_never_raise(value: object, country: str | None) -> None:
    country_code(value)
    region_code(value, country)
    assert parse_count(value) is None or parse_count(value) >= 0
    assert parse_money(value) is None or parse_money(value) >= 0
    parse_number(value)
    parse_datetime(value)
    language_code(value)
    domain_of(value, value)
    is_free_mail(value)  # type: ignore[arg-type]
    is_blank(value)


def test_a_lead_drops_placeholders_in_any_case_as_is_blank_does() -> None:
    """normalize_lead matches placeholders without lower-casing each value; it must agree with ``lower()``."""
    for word in ("n/a", "#n/a", "null", "none", "nil", "nan", "-", "--", "unknown"):
        for spelling in {word, word.upper(), word.title(), word.swapcase(), word.replace("k", "\u212a")}:
            assert is_blank(spelling)
            assert "industry" not in normalize_lead({"industry": f" {spelling} "}).fields
    for kept in ("nulls", "Nope", "NA", "unknowns", "n/a/"):
        assert normalize_lead({"industry": kept}).fields["industry"] == kept


@given(st.text(alphabet="nNaAlLuUoOeEiIkKwW/#-\u212a\u0130 ", max_size=8))
def test_placeholder_spellings_are_exactly_the_lower_cased_placeholders(text: str) -> None:
    assert (text in normalize._PLACEHOLDER_SPELLINGS) == (len(text) < 8 and text.lower() in normalize._PLACEHOLDERS)
