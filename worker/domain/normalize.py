"""Turn what leads really contain into values the routing rules can compare.

Leads arrive from web forms, CSV imports and two CRMs, so the same fact is spelled many
ways: ``"USA"``, ``"United States of America"`` and ``"us"`` must all hit the rule for
``US``; ``"1,000 - 5,000"`` and ``"1k+"`` must both fall in the 1000+ segment. Everything
here is pure (no I/O at call time: the country, region, language and public-suffix tables
are built once at import from the bundled ``pycountry`` and ``tldextract`` data) and
total: a value that cannot be read becomes ``None`` ("unknown"), never an exception, and
:func:`normalize_lead` reports *which* fields were unreadable so a decision can say why a
rule did not match.

It runs for every lead inside a 20,000 decisions/s budget, so lookups go through
precomputed dicts and ``lru_cache``; regexes are compiled once.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache

import pycountry

# Company domains have one implementation, shared with the connectors (which import nothing
# from worker/). The free-mail list is named here too.
from connectors.domains import _FREE_MAIL_DOMAINS as _FREE_MAIL_DOMAINS
from connectors.domains import domain_of, is_free_mail

__all__ = [
    "CANONICAL_FIELDS",
    "NormalizedLead",
    "country_code",
    "domain_of",
    "is_blank",
    "is_free_mail",
    "language_code",
    "normalize_lead",
    "parse_count",
    "parse_datetime",
    "parse_money",
    "parse_number",
    "region_code",
]

CANONICAL_FIELDS: tuple[str, ...] = (
    "id",
    "email",
    "company",
    "website",
    "country",
    "state",
    "postcode",
    "employees",
    "annual_revenue",
    "industry",
    "product_interest",
    "lead_source",
    "score",
    "language",
    "title",
    "created_at",
    "account_owner",
)

# --------------------------------------------------------------------------------------
# Lookup keys
# --------------------------------------------------------------------------------------

_DROP_CHARS = str.maketrans("", "", ".'\u2019`\u00b4")
_WORD_RE = re.compile(r"[^\W_]+")


def _key(text: str) -> str:
    """Reduce a name to its letters and digits, so spelling noise does not matter.

    Case, accents, punctuation and spacing vary between sources ("U.S.", "united  states",
    "Côte d'Ivoire"); keys drop all of it. A leading "the" goes and a leading "St" reads
    "Saint", because both are common and never distinguish two places.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    words = _WORD_RE.findall(text.casefold().replace("&", " and ").translate(_DROP_CHARS))
    if len(words) > 1 and words[0] == "the":
        del words[0]
    if len(words) > 1 and words[0] == "st":
        words[0] = "saint"
    return "".join(words)


# --------------------------------------------------------------------------------------
# Blank values
# --------------------------------------------------------------------------------------

# Placeholders that exports and forms write for "no value". "NA" is deliberately absent:
# it is Namibia's ISO code.
_PLACEHOLDERS = frozenset({"n/a", "#n/a", "null", "none", "nil", "nan", "-", "--", "unknown"})


def _spellings(word: str) -> set[str]:
    """Every text whose ``.lower()`` is ``word`` (ASCII): each letter in either case, "k" also as the Kelvin sign."""
    out = {""}
    for ch in word:
        forms = {ch, ch.upper()} | ({"\u212a"} if ch == "k" else set())
        out = {head + form for head in out for form in forms}
    return out


# The placeholders as they may be spelled: ``text in _PLACEHOLDER_SPELLINGS`` is ``text.lower() in _PLACEHOLDERS``
# without lower-casing every short value of every lead.
_PLACEHOLDER_SPELLINGS = frozenset(spelling for word in _PLACEHOLDERS for spelling in _spellings(word))


def _is_blank_str(text: str) -> bool:
    text = text.strip()
    return not text or (len(text) < 8 and text.lower() in _PLACEHOLDERS)


def is_blank(value: object) -> bool:
    """True for values that carry no information: None, empty/whitespace text, NaN and
    the usual placeholders ("N/A", "null", "-", ...).

    Blank means *absent*, not *unreadable*: a blank field is simply left out of the
    normalised lead instead of being reported.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return _is_blank_str(value)
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    return False


# --------------------------------------------------------------------------------------
# Countries
# --------------------------------------------------------------------------------------

# Local names, abbreviations and historic names that pycountry does not carry. Curated
# entries win over pycountry's generated keys (see _build_countries).
_COUNTRY_ALIASES: dict[str, str] = {
    # United States
    "U.S.": "US", "U.S.A.": "US", "US of A": "US", "America": "US",
    "United States": "US", "United States of America": "US", "Estados Unidos": "US",
    "Vereinigte Staaten": "US", "Etats-Unis": "US",
    # United Kingdom
    "UK": "GB", "U.K.": "GB", "United Kingdom": "GB", "Great Britain": "GB", "Britain": "GB",
    "England": "GB", "Scotland": "GB", "Wales": "GB", "Northern Ireland": "GB",
    "Reino Unido": "GB", "Royaume-Uni": "GB", "Vereinigtes Königreich": "GB",
    # Europe, local names
    "Deutschland": "DE", "Germany": "DE", "Allemagne": "DE", "Alemania": "DE", "Germania": "DE",
    "Bundesrepublik Deutschland": "DE", "BRD": "DE",
    "España": "ES", "Espagne": "ES", "Spanien": "ES", "Spagna": "ES",
    "Schweiz": "CH", "Suisse": "CH", "Svizzera": "CH", "Svizra": "CH", "Helvetia": "CH",
    "Confoederatio Helvetica": "CH", "Switzerland": "CH",
    "Österreich": "AT", "Oesterreich": "AT", "Autriche": "AT",
    "Holland": "NL", "Nederland": "NL", "Netherlands": "NL", "Pays-Bas": "NL", "Niederlande": "NL",
    "België": "BE", "Belgique": "BE", "Belgien": "BE",
    "Frankreich": "FR", "Francia": "FR",
    "Italia": "IT", "Italien": "IT", "Italie": "IT",
    "Polska": "PL", "Polen": "PL", "Pologne": "PL",
    "Česko": "CZ", "Czech Republic": "CZ", "Česká republika": "CZ", "Tschechien": "CZ",
    "Slovensko": "SK", "Slovak Republic": "SK",
    "Sverige": "SE", "Schweden": "SE", "Norge": "NO", "Norwegen": "NO", "Danmark": "DK",
    "Dänemark": "DK", "Suomi": "FI", "Finnland": "FI", "Ísland": "IS",
    "Éire": "IE", "Republic of Ireland": "IE",
    "Magyarország": "HU", "Ungarn": "HU", "Hrvatska": "HR", "Srbija": "RS", "Slovenija": "SI",
    "Lietuva": "LT", "Latvija": "LV", "Eesti": "EE", "Ελλάδα": "GR", "Hellas": "GR",
    "Griechenland": "GR", "Luxemburg": "LU", "Lëtzebuerg": "LU",
    "Turkey": "TR", "Türkei": "TR", "Turkiye": "TR",
    "Russia": "RU", "Россия": "RU", "Rossiya": "RU", "Russland": "RU",
    "Україна": "UA", "Ukraina": "UA", "Moldova": "MD", "Macedonia": "MK",
    "Vatican": "VA", "Vatican City": "VA", "Kosovo": "XK",
    # Americas
    "Brasil": "BR", "Brasilien": "BR", "México": "MX", "Mexiko": "MX",
    "Bolivia": "BO", "Venezuela": "VE",
    # Asia-Pacific, Middle East, Africa
    "South Korea": "KR", "Korea": "KR", "Republic of Korea": "KR", "ROK": "KR",
    "대한민국": "KR", "한국": "KR", "North Korea": "KP", "DPRK": "KP",
    "PRC": "CN", "Mainland China": "CN", "People's Republic of China": "CN", "中国": "CN",
    "Zhongguo": "CN", "日本": "JP", "Nippon": "JP", "Nihon": "JP",
    "Taiwan": "TW", "Republic of China": "TW", "Hong Kong SAR": "HK", "Macau": "MO",
    "Vietnam": "VN", "Laos": "LA", "Burma": "MM", "Brunei": "BN", "East Timor": "TL",
    "Bharat": "IN", "Iran": "IR", "Persia": "IR", "Syria": "SY", "Palestine": "PS",
    "UAE": "AE", "U.A.E.": "AE", "Emirates": "AE", "KSA": "SA", "Saudi": "SA",
    "Aotearoa": "NZ", "Ivory Coast": "CI", "Cape Verde": "CV", "Swaziland": "SZ",
    "RSA": "ZA", "DRC": "CD", "DR Congo": "CD", "Congo-Kinshasa": "CD",
    "Democratic Republic of the Congo": "CD", "Congo-Brazzaville": "CG",
    "Republic of the Congo": "CG", "Tanzania": "TZ", "Micronesia": "FM",
    "British Virgin Islands": "VG", "US Virgin Islands": "VI", "Falkland Islands": "FK",
}  # fmt: skip


def _build_countries() -> dict[str, str]:
    """Key -> ISO-2 for every code, name and alias, built once at import.

    pycountry gives ISO-2, ISO-3, numeric codes and the standard, official and common
    names; names written "Korea, Republic of" also get their natural order ("Republic of
    Korea"). Generated keys that would point at two countries are dropped rather than
    guessed; curated aliases are added last and win.
    """
    table: dict[str, str] = {}
    derived: dict[str, set[str]] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        for attr in ("alpha_2", "alpha_3", "numeric", "name", "official_name", "common_name"):
            text = getattr(country, attr, None)
            if text:
                table[_key(text)] = code
        for attr in ("name", "official_name"):
            text = getattr(country, attr, None)
            if not text:
                continue
            base = re.sub(r"\s*\(.*?\)\s*", " ", text).strip()
            candidates = [base]
            if ", " in base:
                head, tail = base.split(", ", 1)
                candidates += [f"{tail} {head}", head]
            for candidate in candidates:
                derived.setdefault(_key(candidate), set()).add(code)
    for key, codes in derived.items():
        if len(codes) == 1 and key not in table:
            table[key] = next(iter(codes))
    for alias, code in _COUNTRY_ALIASES.items():
        table[_key(alias)] = code
    table.pop("", None)
    return table


_COUNTRIES: dict[str, str] = _build_countries()


@lru_cache(maxsize=4096)
def _country_from_text(text: str) -> str | None:
    if _is_blank_str(text):  # before the lookup: "N/A" would otherwise read as Namibia
        return None
    return _COUNTRIES.get(_key(text))


def country_code(value: object) -> str | None:
    """ISO 3166-1 alpha-2 code (upper case) for a country name, code or alias.

    Accepts ISO-2, ISO-3, numeric codes, English standard/official/common names and a
    curated set of local names and abbreviations ("Deutschland", "UK", "Holland").
    Returns None when blank or not recognised, so a typo never matches the wrong rule.
    """
    if isinstance(value, str):
        return _country_from_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1000:
        return _COUNTRIES.get(f"{value:03d}")
    return None


# --------------------------------------------------------------------------------------
# Regions (US states, Canadian provinces, Australian states)
# --------------------------------------------------------------------------------------

_REGION_ALIASES: dict[str, dict[str, str]] = {
    "US": {
        # AP / postal-era abbreviations and common variants
        "Ala": "AL", "Alas": "AK", "Ariz": "AZ", "Ark": "AR", "Calif": "CA", "Cal": "CA",
        "Colo": "CO", "Conn": "CT", "Del": "DE", "Fla": "FL", "Flor": "FL", "Ill": "IL",
        "Ind": "IN", "Kan": "KS", "Kans": "KS", "Ken": "KY", "Mass": "MA", "Mich": "MI",
        "Minn": "MN", "Miss": "MS", "Mont": "MT", "Neb": "NE", "Nebr": "NE", "Nev": "NV",
        "Okla": "OK", "Ore": "OR", "Oreg": "OR", "Penn": "PA", "Penna": "PA", "Tenn": "TN",
        "Tex": "TX", "Cali": "CA", "Wash": "WA", "W. Va.": "WV", "Wis": "WI", "Wisc": "WI", "Wyo": "WY",
        "D.C.": "DC", "Washington DC": "DC", "Washington D.C.": "DC", "Washington, D.C.": "DC",
        "Puerto Rico": "PR", "US Virgin Islands": "VI",
    },
    "CA": {
        "Alta": "AB", "B.C.": "BC", "Man": "MB", "N.B.": "NB", "Nfld": "NL", "Newfoundland": "NL",
        "Labrador": "NL", "N.S.": "NS", "N.W.T.": "NT", "NWT": "NT", "Ont": "ON", "P.E.I.": "PE",
        "PEI": "PE", "Que": "QC", "PQ": "QC", "Québec": "QC", "Sask": "SK", "Yuk": "YT",
        "Yukon Territory": "YT", "Colombie-Britannique": "BC", "Nouveau-Brunswick": "NB",
        "Nouvelle-Écosse": "NS", "Terre-Neuve-et-Labrador": "NL",
        "Île-du-Prince-Édouard": "PE", "Territoires du Nord-Ouest": "NT",
    },
    "AU": {"Tassie": "TAS", "Vic": "VIC", "Qld": "QLD", "A.C.T.": "ACT", "Canberra": "ACT"},
}  # fmt: skip


def _build_regions() -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per-country key -> region code tables, plus a merged table for leads without a
    country (keys that mean different regions in different countries are left out)."""
    tables: dict[str, dict[str, str]] = {}
    for country, aliases in _REGION_ALIASES.items():
        table: dict[str, str] = {}
        for sub in pycountry.subdivisions.get(country_code=country) or ():
            code = sub.code.split("-", 1)[1]
            table[_key(code)] = code
            table.setdefault(_key(sub.name), code)
        for alias, code in aliases.items():
            table[_key(alias)] = code
        tables[country] = table
    merged: dict[str, str] = {}
    conflicts: set[str] = set()
    for table in tables.values():
        for key, code in table.items():
            if merged.setdefault(key, code) != code:
                conflicts.add(key)
    for key in conflicts:
        del merged[key]
    return tables, merged


_REGIONS, _REGIONS_ANY = _build_regions()


@lru_cache(maxsize=4096)
def _region_from_text(text: str, country: str | None) -> str | None:
    text = text.strip()
    if not text or _is_blank_str(text):
        return None
    # "US-CA" (ISO 3166-2) style values carry their own country prefix.
    prefix = text[:2].upper()
    if len(text) > 3 and text[2] in "-_" and prefix in _REGIONS and country in (None, prefix):
        code = _REGIONS[prefix].get(_key(text[3:]))
        if code is not None:
            return code
    table = _REGIONS.get(country) if country else _REGIONS_ANY
    if table is None:
        return text.upper()
    code = table.get(_key(text))
    if code is None and country is None:
        return text.upper()
    return code


def region_code(value: object, country: str | None) -> str | None:
    """Region code of a state/province within ``country`` ("California" -> "CA").

    US states, Canadian provinces and Australian states are recognised by code, name
    and common abbreviation; an unrecognised value there is None (unreadable). For other
    countries there is no table, so the trimmed upper-case input is returned and rules can
    still compare it. Without a country, US/CA/AU names are tried, else the input is kept.
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        text = str(value)
    else:
        return None
    if not isinstance(country, str) or is_blank(country):
        country = None
    elif country not in _REGIONS:
        country = country_code(country) or country.strip().upper()
    return _region_from_text(text, country)


# --------------------------------------------------------------------------------------
# Amounts: employees, revenue, scores
# --------------------------------------------------------------------------------------

_NUM = r"(?:\d{1,3}(?:[,.'\u00a0\u202f\u2009 ]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?|[.,]\d+)"
_SUFFIX = r"(?:thousand|tsd|millions?|mio|mln|mn|mm|mil|billions?|bn|mrd|k|m|b)\.?(?![a-z])"
_CURRENCY = (
    r"(?:us\$|a\$|c\$|usd|eur|gbp|chf|cad|aud|jpy|inr|sek|nok|dkk|[$\u20ac\u00a3\u00a5\u20b9]"
    r"|dollars?|euros?|pounds?)"
)
_COMPARATOR = (
    r"(?:>=|<=|[<>\u2265\u2264~\u2248]|over\b|more\s+than\b|greater\s+than\b|at\s+least\b"
    r"|above\b|under\b|less\s+than\b|fewer\s+than\b|below\b|up\s*to\b|approx(?:imately\b|\.|\b)"
    r"|about\b|around\b|ca\.|ca\b|circa\b|est\.|estimated\b)"
)
_UNIT = (
    r"(?:employees?|emps?|people|persons|staff|ftes?|mitarbeiter(?:innen)?|headcount"
    r"|(?:in\s+)?revenue|per\s+year|p\.\s?a\.?|/\s?(?:yr|year)|annually)"
)
_AMOUNT_RE = re.compile(
    rf"""
    (?P<cmp>{_COMPARATOR})?\s*{_CURRENCY}?\s*
    (?P<n1>{_NUM})\s*(?P<s1>{_SUFFIX})?\s*{_CURRENCY}?\s*
    (?:\+|plus\b|or\s+more\b|and\s+(?:more|above|over|up)\b)?\s*
    (?:
        (?:-|\u2013|\u2014|~|to\b|bis\b)\s*{_CURRENCY}?\s*
        (?P<n2>{_NUM})\s*(?P<s2>{_SUFFIX})?\s*{_CURRENCY}?\s*\+?\s*
    )?
    {_UNIT}?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MULTIPLIERS = {
    "thousand": 1e3, "tsd": 1e3, "k": 1e3,
    "million": 1e6, "millions": 1e6, "mio": 1e6, "mln": 1e6, "mn": 1e6, "mm": 1e6,
    "mil": 1e6, "m": 1e6,
    "billion": 1e9, "billions": 1e9, "bn": 1e9, "mrd": 1e9, "b": 1e9,
}  # fmt: skip
_UPPER_BOUND_ONLY = ("<", "\u2264", "under", "less", "fewer", "below", "up")
_GROUP_SPACES = str.maketrans("", "", "'\u00a0\u202f\u2009 ")
_COUNT_WORDS = {"selfemployed": 1.0, "solo": 1.0, "soleproprietor": 1.0, "justme": 1.0}


def _grouped(token: str, sep: str) -> bool:
    head, _, tail = token.rpartition(sep)
    return len(tail) == 3 and 1 <= len(head) <= 3


def _to_float(token: str, dot_groups: bool) -> float:
    """Read one number token, deciding which of ',' and '.' is the decimal mark.

    Both present: the last one is decimal ("1.234,5", "1,234.5"). One comma: thousands
    when followed by exactly three digits ("2,500"), decimal otherwise ("2,5"). One dot:
    decimal, except for counts without a suffix ("1.000" employees is a thousand).
    """
    token = token.translate(_GROUP_SPACES)
    comma, dot = token.rfind(","), token.rfind(".")
    if comma == -1 and dot == -1:
        return float(token)
    if comma != -1 and dot != -1:
        decimal: str | None = "," if comma > dot else "."
    elif comma != -1:
        decimal = None if token.count(",") > 1 or _grouped(token, ",") else ","
    else:
        decimal = None if token.count(".") > 1 or (dot_groups and _grouped(token, ".")) else "."
    if decimal is None:
        token = token.replace(",", "").replace(".", "")
    elif decimal == ",":
        token = token.replace(".", "").replace(",", ".")
    else:
        token = token.replace(",", "")
    return float(token)


@lru_cache(maxsize=4096)
def _amount_from_text(text: str, count: bool) -> float | None:
    """Lower bound of an amount written as text, or None."""
    text = text.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        return _COUNT_WORDS.get(_key(text)) if count else None
    cmp, n1, s1, n2, s2 = match.group("cmp", "n1", "s1", "n2", "s2")
    low = _to_float(n1, dot_groups=count and not s1)
    if s1:
        low *= _MULTIPLIERS.get(s1.rstrip(".").lower(), math.nan)
    if n2 is not None:
        high = _to_float(n2, dot_groups=count and not s2)
        if s2:
            mult = _MULTIPLIERS.get(s2.rstrip(".").lower(), math.nan)
            # "10-50M" means 10M-50M: a bare lower bound borrows the upper's magnitude.
            if not s1 and low < high:
                low *= mult
            high *= mult
        low = min(low, high)
    if cmp and cmp.lower().startswith(_UPPER_BOUND_ONLY):
        low = 0.0
    return low if math.isfinite(low) else None


def _amount(value: object, count: bool) -> float | None:
    if isinstance(value, str):
        return _amount_from_text(value, count)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_count(value: object) -> int | None:
    """Employee count as an int: "1,000", "1000-5000" (lower bound), "5k+", "1.5k",
    "500+", "10,001+ employees". Blank, negative or unreadable -> None.

    Ranges resolve to their lower bound because segments are defined by thresholds
    ("1000+ is enterprise"), and a company claiming 1000-5000 is at least 1000.
    """
    amount = _amount(value, count=True)
    return None if amount is None else int(amount)


def parse_money(value: object) -> float | None:
    """Annual revenue as a float in the stated currency (no FX conversion): "$2.5M",
    "2,500,000", "10m-50m" (lower bound), "1.2B", "€3 mio", "2,5 Mio. EUR".

    Blank, negative or unreadable -> None.
    """
    return _amount(value, count=False)


_DECIMAL_COMMA_RE = re.compile(r"[+-]?\d+,\d+", re.ASCII)
_GROUPED_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", re.ASCII)


@lru_cache(maxsize=4096)
def _number_from_text(text: str) -> float | None:
    text = text.strip().removesuffix("%").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        if _DECIMAL_COMMA_RE.fullmatch(text):  # "72,5"
            number = float(text.replace(",", "."))
        elif _GROUPED_RE.fullmatch(text):  # "1,234.5"
            number = float(text.replace(",", ""))
        else:
            return None
    return number if math.isfinite(number) else None


def parse_number(value: object) -> float | None:
    """A plain number such as a lead score ("85", "85.0", " 72 ", "72,5", "90%") as a
    float; None when blank, not numeric, NaN or infinite."""
    if isinstance(value, str):
        return _number_from_text(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------------------
# Languages
# --------------------------------------------------------------------------------------

_LANGUAGE_ALIASES: dict[str, str] = {
    "Deutsch": "de", "Français": "fr", "Español": "es", "Castellano": "es", "Castilian": "es",
    "Italiano": "it", "Português": "pt", "Nederlands": "nl", "Vlaams": "nl", "Flemish": "nl",
    "Svenska": "sv", "Norsk": "no", "Bokmål": "nb", "Dansk": "da", "Suomi": "fi",
    "Polski": "pl", "Čeština": "cs", "Slovenčina": "sk", "Magyar": "hu", "Română": "ro",
    "Ελληνικά": "el", "Greek": "el", "Türkçe": "tr", "Русский": "ru", "Українська": "uk",
    "עברית": "he", "العربية": "ar", "हिन्दी": "hi", "日本語": "ja", "中文": "zh",
    "Mandarin": "zh", "普通话": "zh", "한국어": "ko", "Bahasa Indonesia": "id",
    "Bahasa Melayu": "ms", "Tiếng Việt": "vi", "Farsi": "fa", "Tagalog": "tl", "Filipino": "tl",
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv",
}  # fmt: skip


def _build_languages() -> tuple[dict[str, str], dict[str, str]]:
    """(code -> ISO 639-1, name key -> ISO 639-1) for the languages that have a 2-letter
    code, from pycountry plus native names ("Deutsch") and retired codes ("iw")."""
    codes: dict[str, str] = {}
    names: dict[str, str] = {}
    for lang in pycountry.languages:
        alpha_2 = getattr(lang, "alpha_2", None)
        if not alpha_2:
            continue
        for attr in ("alpha_2", "alpha_3", "bibliographic"):
            code = getattr(lang, attr, None)
            if code:
                codes[code] = alpha_2
        for name in lang.name.split(";"):
            names.setdefault(_key(name), alpha_2)
            names.setdefault(_key(re.sub(r"\(.*?\)", "", name)), alpha_2)
    for alias, alpha_2 in _LANGUAGE_ALIASES.items():
        if len(alias) <= 3 and alias.isascii():
            codes[alias] = alpha_2
        else:
            names[_key(alias)] = alpha_2
    names.pop("", None)
    return codes, names


_LANGUAGE_CODES, _LANGUAGE_NAMES = _build_languages()
_LANGUAGE_TAG_RE = re.compile(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*")


@lru_cache(maxsize=1024)
def _language_from_text(text: str) -> str | None:
    text = text.strip()
    if _is_blank_str(text):
        return None
    tag = _LANGUAGE_TAG_RE.fullmatch(text)
    if tag is not None:
        code = _LANGUAGE_CODES.get(tag.group(1).lower())
        if code is not None:
            return code
    code = _LANGUAGE_NAMES.get(_key(text.partition("(")[0]))
    return code if code is not None else text.lower()


def language_code(value: object) -> str | None:
    """Lower-case ISO 639-1 code for a language tag or name ("EN-us", "English", "Deutsch"
    -> "en"/"de"); an unrecognised value is returned lower-cased, blank -> None."""
    return _language_from_text(value) if isinstance(value, str) else None


# --------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------

_LONG_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


def _from_epoch(seconds: float) -> datetime | None:
    if abs(seconds) >= 1e11:  # milliseconds, as JavaScript and most CRMs export them
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_datetime(value: object) -> datetime | None:
    """Timezone-aware datetime from ISO 8601 text, a datetime/date, or epoch seconds (or
    milliseconds). A naive value is taken as UTC; unreadable -> None.

    Routing time decides working hours, so it must be an unambiguous instant.
    """
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
            if text.isascii() and text.isdigit() and len(text) >= 9:
                parsed = _from_epoch(float(text))
            elif text:
                fixed = _LONG_FRACTION_RE.sub(r"\1", text.replace(" UTC", "Z").replace(" GMT", "Z"))
                try:
                    parsed = datetime.fromisoformat(fixed)
                except ValueError:
                    parsed = None
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        parsed = _from_epoch(float(value))
    else:
        parsed = None
    if parsed is not None and parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# --------------------------------------------------------------------------------------
# Whole leads
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalizedLead:
    """A lead after normalisation.

    ``fields`` holds canonical fields (plus unknown extra keys as trimmed strings), with
    blanks removed and values typed; ``unreadable`` names the canonical fields that had a
    value which could not be read, so a decision can explain why a rule did not match.
    """

    fields: dict[str, object]
    unreadable: tuple[str, ...]


_CANONICAL_SET = frozenset(CANONICAL_FIELDS)
# Header spellings seen in CRM exports (Salesforce API names, HubSpot properties, forms).
_FIELD_ALIASES: dict[str, str] = {
    "lead_id": "id", "email_address": "email", "company_name": "company", "url": "website",
    "web_site": "website", "country_code": "country", "region": "state", "province": "state",
    "state_province": "state", "state_or_province": "state", "stateorprovince": "state",
    "zip": "postcode", "zip_code": "postcode", "zipcode": "postcode", "postal_code": "postcode",
    "postalcode": "postcode", "post_code": "postcode", "number_of_employees": "employees",
    "numberofemployees": "employees", "numemployees": "employees", "employee_count": "employees",
    "num_employees": "employees", "revenue": "annual_revenue", "annualrevenue": "annual_revenue",
    "leadsource": "lead_source", "lead_score": "score", "preferred_language": "language",
    "job_title": "title", "jobtitle": "title", "createddate": "created_at",
    "created_date": "created_at", "createdate": "created_at", "created": "created_at",
    "domain": "domain",
}  # fmt: skip


@lru_cache(maxsize=1024)
def _field_name(key: str) -> str | None:
    """Canonical field for a header spelling ("Annual Revenue", "NumberOfEmployees")."""
    name = key.strip().lower().replace(" ", "_").replace("-", "_")
    if name in _CANONICAL_SET:
        return name
    return _FIELD_ALIASES.get(name)


def _text(value: object) -> object:
    """Text fields stay text: trimmed strings, integral numbers without ".0"."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return value


def _postcode(value: object, country: str | None) -> str | None:
    text = _text(value)
    if not isinstance(text, str):
        return None
    text = text.upper()
    # Spreadsheets drop the leading zero of New England ZIPs (02134 -> 2134).
    if country == "US" and text.isdigit() and 3 <= len(text) < 5:
        text = text.zfill(5)
    return text


_Parser = Callable[[object], object]
_TYPED: dict[str, _Parser] = {
    "country": country_code,
    "employees": parse_count,
    "annual_revenue": parse_money,
    "score": parse_number,
    "language": language_code,
    "created_at": parse_datetime,
}
_DEFERRED = frozenset({"state", "postcode", "domain"})  # need the country / all sources first


@lru_cache(maxsize=4096)
def _count_from_text(text: str) -> int | None:
    """:func:`parse_count` of text (remembered: a CSV repeats the same few spellings)."""
    amount = _amount_from_text(text, True)
    return None if amount is None else int(amount)


# The same parsers for a (trimmed) str value, one call each: what :func:`normalize_lead` meets nearly always.
_TYPED_TEXT: dict[str, _Parser] = {
    "country": _country_from_text,
    "employees": _count_from_text,
    "score": _number_from_text,
}


def _later(value: object) -> object:
    """Marks a field :func:`normalize_lead` reads after the others (``_DEFERRED``); never called."""
    raise AssertionError("deferred fields are not parsed in the first pass")


# For a str value, one look-up: its parser (text first), ``_later`` for a deferred field, nothing for plain text.
_TEXT_PARSERS: dict[str, _Parser] = {**_TYPED, **_TYPED_TEXT, **dict.fromkeys(_DEFERRED, _later)}


def normalize_lead(raw: Mapping[str, object]) -> NormalizedLead:
    """Normalise a raw lead dict into typed canonical fields and the list of fields that
    were present but unreadable. Never raises on field values.

    Header spellings are matched case-insensitively (with a few CRM aliases, an exact
    canonical key winning over an alias); unknown keys are kept as trimmed strings.
    ``domain`` is derived from email/website (or a raw ``domain``) when possible.
    """
    picked: dict[str, object] = {}
    extras: dict[object, object] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            value = value.strip()
            if not value or value in _PLACEHOLDER_SPELLINGS:
                continue
        elif is_blank(value):
            continue
        if key in _CANONICAL_SET:
            picked[key] = value
            continue
        name = _field_name(key) if isinstance(key, str) else None
        if name is not None:
            picked.setdefault(name, value)
        else:
            extras[key.strip() if isinstance(key, str) else key] = _text(value)

    fields: dict[str, object] = {}
    unreadable: list[str] = []
    for name, value in picked.items():
        if value.__class__ is str:
            parser = _TEXT_PARSERS.get(name)
            if parser is None:
                fields[name] = value
                continue
            if parser is _later:
                continue
        else:
            parser = _TYPED.get(name)
            if parser is None:
                if name not in _DEFERRED:
                    fields[name] = _text(value)
                continue
        try:
            result = parser(value)
        except Exception:  # a parser bug must not drop the lead; report the field instead
            result = None
        if result is None:
            unreadable.append(name)
        else:
            fields[name] = result
    country = fields.get("country")
    if not isinstance(country, str):
        country = None

    if "state" in picked:
        try:
            state = region_code(picked["state"], country)
        except Exception:
            state = None
        if state is None:
            unreadable.append("state")
        else:
            fields["state"] = state
    if "postcode" in picked:
        postcode = _postcode(picked["postcode"], country)
        if postcode is None:
            unreadable.append("postcode")
        else:
            fields["postcode"] = postcode

    try:
        domain = domain_of(picked.get("email"), picked.get("website"))
        if domain is None and "domain" in picked:
            domain = domain_of(website=picked["domain"])
    except Exception:
        domain = None
    if domain is not None:
        fields["domain"] = domain
    if extras:
        fields.update(extras)
    return NormalizedLead(fields, tuple(unreadable))
