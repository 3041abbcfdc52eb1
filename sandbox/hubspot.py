"""HubSpot CRM v3 emulation: objects (contacts, companies, notes, deals), search, batch, owners, and the
v4 associations batch read.

Shapes follow HubSpot's published OpenAPI specifications (tests validate against them), and
the limits follow HubSpot's documentation: a rolling ten-second burst limit with
``X-HubSpot-RateLimit-*`` headers, a daily allowance, a separate per-second limit for the search
endpoints, 200 results per search page and no paging past 10,000 results.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .clock import advance, hs_datetime, now_ms, parse_date, parse_datetime_ms, wall_ms
from .http import JSON_HS, Ctx, Resp
from .ids import correlation_id
from .schema import HS_ASSOCIATION_TYPES, HS_MODIFIED_PROPERTY, HS_SINGULAR
from .state import HubSpotStore, RequestError, SandboxState

OBJECT_TYPES = ("contacts", "companies", "notes", "deals")
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
SEARCHABLE = ("firstname", "lastname", "email", "phone", "company", "name", "domain", "website", "hs_note_body",
              "dealname")
ASSOCIATION_TARGETS = {202: "contacts", 190: "companies", 1: "companies", 279: "companies", 280: "contacts",
                       3: "contacts", 4: "deals", 341: "companies", 342: "deals"}
# how the associations API may name an object type: plural, singular, or its object type id
OBJECT_TYPE_NAMES = {
    **{t: t for t in OBJECT_TYPES}, "contact": "contacts", "company": "companies", "note": "notes", "deal": "deals",
    "0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-46": "notes",
}
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18


# --- errors, auth, limits -------------------------------------------------------------------


def hs_error(status: int, category: str, message: str, **extra: Any) -> Resp:
    body = {"status": "error", "message": message, "correlationId": correlation_id(), "category": category}
    body.update(extra)
    return Resp(status, body, content_type=JSON_HS)


def hs_fail(status: int, category: str, message: str, **extra: Any) -> RequestError:
    resp = hs_error(status, category, message, **extra)
    return RequestError(resp.status, resp.body)


def unauthorized() -> Resp:
    return hs_error(401, "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def authenticate(ctx: Ctx) -> Resp | None:
    auth = ctx.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or token.strip() != ctx.state.hs_access_token:
        return unauthorized()
    return None


def rate_headers(state: SandboxState, now: int, *, interval: bool = True) -> list[tuple[bytes, bytes]]:
    lim = state.limits["hubspot"]
    headers = [
        (b"x-hubspot-ratelimit-daily", str(lim["daily_limit"]).encode()),
        (b"x-hubspot-ratelimit-daily-remaining", str(max(0, lim["daily_limit"] - state.hs_daily_used)).encode()),
    ]
    if interval:
        used = state.hs_ten_second.used(now)
        headers += [
            (b"x-hubspot-ratelimit-interval-milliseconds", b"10000"),
            (b"x-hubspot-ratelimit-max", str(lim["ten_second_limit"]).encode()),
            (b"x-hubspot-ratelimit-remaining", str(max(0, lim["ten_second_limit"] - used)).encode()),
        ]
    return headers


_POLICY_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


def rate_limited(state: SandboxState, policy: str, retry_after_s: int, injected: bool = False) -> Resp:
    """HubSpot's 429 body and headers (plus ``category`` so the body also fits HubSpot's Error schema)."""
    body = {
        "status": "error",
        "message": _POLICY_MESSAGES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "groupName": f"publicapi:private-app-api-calls-{policy.lower()}:{state.hs.portal_id}",
        "category": "RATE_LIMITS",
    }
    now = wall_ms()
    headers = rate_headers(state, now, interval=policy != "SECONDLY")
    if policy == "TEN_SECONDLY_ROLLING" and not injected:
        headers = [(k, b"0") if k == b"x-hubspot-ratelimit-remaining" else (k, v) for k, v in headers]
    if policy != "DAILY":  # waiting until midnight is not a retry; urllib3 would sleep for hours
        headers.append((b"retry-after", str(max(1, retry_after_s)).encode()))
    return Resp(429, body, headers=headers, content_type=JSON_HS)


def charge(ctx: Ctx) -> tuple[Resp | None, list[tuple[bytes, bytes]]]:
    """Apply the daily, ten-secondly and (for search) secondly policies; returns headers to send."""
    state = ctx.state
    lim = state.limits["hubspot"]
    now = wall_ms()
    is_search = ctx.endpoint.endswith("/search")
    if state.hs_daily_used >= lim["daily_limit"]:
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        seconds = math.ceil((tomorrow - datetime.now(UTC)).total_seconds())
        return rate_limited(state, "DAILY", seconds), []
    if is_search:
        if not state.hs_search_second.try_take(now, lim["search_per_second"]):
            return rate_limited(state, "SECONDLY", 1), []
    elif not state.hs_ten_second.try_take(now, lim["ten_second_limit"]):
        wait = math.ceil(state.hs_ten_second.retry_after_ms(now) / 1000)
        return rate_limited(state, "TEN_SECONDLY_ROLLING", wait), []
    state.hs_daily_used += 1
    return None, rate_headers(state, now, interval=not is_search)


# --- helpers --------------------------------------------------------------------------------


def parse_json(ctx: Ctx) -> Any:
    try:
        return json.loads(ctx.body.decode("utf-8") if ctx.body else "")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line, col = (exc.lineno, exc.colno) if isinstance(exc, json.JSONDecodeError) else (1, 1)
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
        raise hs_fail(400, "VALIDATION_ERROR", f"Invalid input JSON on line {line}, column {col}: {reason}") from exc


def _object_body(ctx: Ctx, allowed: set[str]) -> dict[str, Any]:
    body = parse_json(ctx)
    if not isinstance(body, dict):
        raise hs_fail(400, "VALIDATION_ERROR", "Invalid input JSON on line 1, column 1: Cannot deserialize value "
                      "from Array value (token `JsonToken.START_ARRAY`)")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise hs_fail(400, "VALIDATION_ERROR", f"Invalid input JSON on line 1, column 2: Unrecognized field "
                      f"\"{unknown[0]}\" (known fields: {', '.join(sorted(allowed))}), not marked as ignorable")
    return body


def _otype(ctx: Ctx) -> str:
    otype = ctx.params["otype"]
    if otype not in OBJECT_TYPES:
        raise hs_fail(400, "VALIDATION_ERROR", f"Unable to infer object type from: {otype}")
    return otype


def _properties_arg(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise hs_fail(400, "VALIDATION_ERROR", "properties must be a list of strings")
    return value


def _validated(hs: HubSpotStore, otype: str, props: Any) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise hs_fail(400, "VALIDATION_ERROR", "properties must be an object of property name to string value")
    problems = hs.validate_properties(otype, props)
    if problems:
        raise hs_fail(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(problems)}",
                      errors=[{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
                              for p in problems])
    return props


def _not_found(rid: str) -> Resp:
    return hs_error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", context={"id": [rid]})


def _batch_envelope(results: list[dict[str, Any]], started: int, errors: list[dict[str, Any]]) -> Resp:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": hs_datetime(started),
                            "completedAt": hs_datetime(now_ms())}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return Resp(207, body, content_type=JSON_HS)
    return Resp(200, body, content_type=JSON_HS)


def _missing_error(otype: str, ids: list[str], verb: str = "get") -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not {verb} some {HS_SINGULAR[otype]} objects, they may be deleted or not exist. "
                       "Check that ids are valid.",
            "context": {"ids": ids}, "errors": [], "links": {}}


def _bool_param(ctx: Ctx, name: str) -> bool:
    return (ctx.q(name) or "false").lower() == "true"


# --- search ---------------------------------------------------------------------------------


def _to_ms(text: str) -> int | None:
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    ms = parse_datetime_ms(text)
    if ms is not None:
        return ms
    d = parse_date(text)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000) if d else None


def _converter(ptype: str, prop: str) -> Callable[[str], Any]:
    if ptype in ("datetime", "date"):
        def conv(text: str) -> Any:
            ms = _to_ms(text)
            if ms is None:
                raise ValueError(f"{text} is not a valid date for property {prop}; use epoch milliseconds")
            return ms
        return conv
    if ptype == "number":
        def num(text: str) -> Any:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{text} is not a valid number for property {prop}") from None
        return num
    return lambda text: text.lower()


def _getter(hs: HubSpotStore, otype: str, prop: str, conv: Callable[[str], Any]) -> Callable[[dict[str, Any]], Any]:
    if prop == "createdate":
        return lambda r: r["createdAt"]
    if prop == HS_MODIFIED_PROPERTY[otype]:
        return lambda r: r["updatedAt"]
    if prop == "hs_object_id":
        return lambda r: float(r["id"])

    def get(r: dict[str, Any]) -> Any:
        v = r["properties"].get(prop)
        if v is None:
            return None
        try:
            return conv(v)
        except ValueError:
            return None
    return get


def _filter_pred(hs: HubSpotStore, otype: str, flt: Any) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(flt, dict):
        raise hs_fail(400, "VALIDATION_ERROR", "each filter must be an object")
    unknown = set(flt) - {"propertyName", "operator", "value", "values", "highValue"}
    if unknown:
        raise hs_fail(400, "VALIDATION_ERROR", f"Invalid input JSON: Unrecognized field \"{sorted(unknown)[0]}\" "
                      "in filter")
    name, op = flt.get("propertyName"), flt.get("operator")
    if not isinstance(name, str) or not name:
        raise hs_fail(400, "VALIDATION_ERROR", "filter.propertyName is required")
    if op not in OPERATORS:
        raise hs_fail(400, "VALIDATION_ERROR", f"filter.operator {op!r} is not one of {', '.join(OPERATORS)}")
    prop = hs.props[otype].get(name)
    if prop is None:
        raise hs_fail(400, "VALIDATION_ERROR", f"Property \"{name}\" does not exist on {otype}; cannot filter on it")
    conv = _converter(prop.type, name)
    get = _getter(hs, otype, name, conv)
    try:
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            if op == "HAS_PROPERTY":
                return lambda r: get(r) is not None
            return lambda r: get(r) is None
        if op in ("IN", "NOT_IN"):
            values = flt.get("values")
            if not isinstance(values, list) or not values:
                raise hs_fail(400, "VALIDATION_ERROR", f"operator {op} requires a non-empty 'values' list")
            wanted = {conv(str(v)) for v in values}
            if op == "IN":
                return lambda r: get(r) in wanted
            return lambda r: get(r) not in wanted
        if "value" not in flt or flt["value"] is None:
            raise hs_fail(400, "VALIDATION_ERROR", f"operator {op} requires a 'value'")
        raw = str(flt["value"])
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            rx = re.compile(".*".join(re.escape(p) for p in raw.lower().split("*")))
            contains = op == "CONTAINS_TOKEN"

            def token_pred(r: dict[str, Any]) -> bool:
                v = r["properties"].get(name)
                hit = v is not None and (rx.fullmatch(v.lower()) is not None or
                                         any(rx.fullmatch(t) for t in re.split(r"[\s,;]+", v.lower())))
                return hit if contains else not hit
            return token_pred
        target = conv(raw)
        if op == "BETWEEN":
            if flt.get("highValue") is None:
                raise hs_fail(400, "VALIDATION_ERROR", "operator BETWEEN requires 'value' and 'highValue'")
            high = conv(str(flt["highValue"]))
            return lambda r: (v := get(r)) is not None and target <= v <= high
    except ValueError as exc:
        raise hs_fail(400, "VALIDATION_ERROR", str(exc)) from exc
    if op == "EQ":
        return lambda r: get(r) == target
    if op == "NEQ":
        return lambda r: get(r) != target
    cmp: Callable[[Any, Any], bool] = {
        "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
    }[op]
    return lambda r: (v := get(r)) is not None and cmp(v, target)


def _sort_spec(sorts: Any) -> tuple[str, bool] | None:
    if sorts is None or sorts == []:
        return None
    if not isinstance(sorts, list):
        raise hs_fail(400, "VALIDATION_ERROR", "sorts must be a list")
    if len(sorts) > 1:
        raise hs_fail(400, "VALIDATION_ERROR", "Only one sort is supported per search request")
    item = sorts[0]
    if isinstance(item, str):
        return (item[1:], True) if item.startswith("-") else (item, False)
    if isinstance(item, dict) and isinstance(item.get("propertyName"), str):
        direction = item.get("direction", "ASCENDING")
        if direction not in ("ASCENDING", "DESCENDING"):
            raise hs_fail(400, "VALIDATION_ERROR", "sort direction must be ASCENDING or DESCENDING")
        return item["propertyName"], direction == "DESCENDING"
    raise hs_fail(400, "VALIDATION_ERROR", "each sort must be a property name or {propertyName, direction}")


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise hs_fail(400, "VALIDATION_ERROR", f"Invalid input JSON: '{name}' must be a non-negative integer")
    return int(value)


def search(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    state = ctx.state
    hs = state.hs
    lim = state.limits["hubspot"]
    body = _object_body(ctx, {"filterGroups", "sorts", "query", "properties", "limit", "after"})
    limit = _int_field(body, "limit", 10)
    if limit > lim["search_page_max"]:
        raise hs_fail(400, "VALIDATION_ERROR",
                      f"limit must be less than or equal to {lim['search_page_max']} (got {limit})")
    after = _int_field(body, "after", 0)
    if after >= lim["search_total_max"]:
        raise hs_fail(400, "VALIDATION_ERROR",
                      f"Search results are limited to {lim['search_total_max']} total results; paging beyond "
                      f"that is not supported (after={after})")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise hs_fail(400, "VALIDATION_ERROR", "filterGroups must be a list")
    if len(groups) > MAX_FILTER_GROUPS:
        raise hs_fail(400, "VALIDATION_ERROR", f"Too many filter groups: {len(groups)} (max {MAX_FILTER_GROUPS})")
    preds = []
    total_filters = 0
    for g in groups:
        filters = g.get("filters") if isinstance(g, dict) else None
        if not isinstance(filters, list):
            raise hs_fail(400, "VALIDATION_ERROR", "each filterGroup needs a 'filters' list")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise hs_fail(400, "VALIDATION_ERROR",
                          f"Too many filters in a group: {len(filters)} (max {MAX_FILTERS_PER_GROUP})")
        total_filters += len(filters)
        preds.append([_filter_pred(hs, otype, f) for f in filters])
    if total_filters > MAX_FILTERS:
        raise hs_fail(400, "VALIDATION_ERROR", f"Too many filters: {total_filters} (max {MAX_FILTERS})")
    sort = _sort_spec(body.get("sorts"))
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > 3000):
        raise hs_fail(400, "VALIDATION_ERROR", "query must be a string of at most 3000 characters")
    properties = _properties_arg(body.get("properties"))

    key = json.dumps([otype, groups, body.get("sorts"), query], sort_keys=True, default=str)
    cache = state.hs_search_cache
    hit = cache.get(key)
    if hit is not None and hit[0] == hs.version:
        rows = hit[1]
    else:
        rows = _run_search(hs, otype, preds, sort, query)
        if len(cache) > 32:
            cache.clear()
        cache[key] = (hs.version, rows)
    end = min(after + limit, len(rows), lim["search_total_max"])
    results = [hs.render(otype, r, properties) for r in rows[after:end]]
    out: dict[str, Any] = {"total": len(rows), "results": results}
    if end < len(rows):
        out["paging"] = {"next": {"after": str(end), "link": f"?after={end}"}}
    return Resp(200, out, content_type=JSON_HS)


def _run_search(hs: HubSpotStore, otype: str, preds: list[list[Callable[[dict[str, Any]], bool]]],
                sort: tuple[str, bool] | None, query: str | None) -> list[dict[str, Any]]:
    rows = [r for r in hs.objects[otype].values() if not r["archived"]]
    if preds:
        rows = [r for r in rows if any(all(p(r) for p in group) for group in preds)]
    if query:
        needle = query.lower()
        rows = [r for r in rows if any(needle in (r["properties"].get(p) or "").lower() for p in SEARCHABLE)]
    rows.sort(key=lambda r: int(r["id"]) if r["id"].isdigit() else 0)
    if sort:
        name, desc = sort
        prop = hs.props[otype].get(name)
        if prop is None:
            raise hs_fail(400, "VALIDATION_ERROR", f"Property \"{name}\" does not exist on {otype}; cannot sort by it")
        get = _getter(hs, otype, name, _converter(prop.type, name))
        present = [r for r in rows if get(r) is not None]
        missing = [r for r in rows if get(r) is None]
        present.sort(key=get, reverse=desc)
        rows = present + missing
    return rows


# --- objects --------------------------------------------------------------------------------


def get_object(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    hs = ctx.state.hs
    rec = hs.find(otype, ctx.params["id"], ctx.q("idProperty"), _bool_param(ctx, "archived"))
    if rec is None:
        return _not_found(ctx.params["id"])
    out = hs.render(otype, rec, ctx.q_list("properties"))
    assoc = ctx.q_list("associations")
    if assoc:
        out["associations"] = {a: {"results": [{"id": i, "type": f"{otype[:-1]}_to_{a[:-1]}"}
                                               for i in rec["associations"].get(a, [])]}
                               for a in assoc if rec["associations"].get(a)}
    return Resp(200, out, content_type=JSON_HS)


def list_objects(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    hs = ctx.state.hs
    try:
        limit = int(ctx.q("limit", "10") or 10)
        after = int(ctx.q("after", "0") or 0)
    except ValueError as exc:
        raise hs_fail(400, "VALIDATION_ERROR", "limit and after must be integers") from exc
    if not 1 <= limit <= 100:
        raise hs_fail(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
    archived = _bool_param(ctx, "archived")
    rows = [r for r in hs.objects[otype].values() if r["archived"] == archived]
    rows.sort(key=lambda r: int(r["id"]) if r["id"].isdigit() else 0)
    page = [r for r in rows if int(r["id"]) > after][:limit] if rows else []
    out: dict[str, Any] = {"results": [hs.render(otype, r, ctx.q_list("properties")) for r in page]}
    if page and page[-1] is not rows[-1]:
        nxt = str(int(page[-1]["id"]))
        out["paging"] = {"next": {"after": nxt, "link": f"{ctx.base_url}/crm/v3/objects/{otype}?after={nxt}"}}
    return Resp(200, out, content_type=JSON_HS)


def _associate(ctx: Ctx, otype: str, rec: dict[str, Any], associations: Any) -> list[tuple[str, dict[str, Any]]]:
    """Validate association inputs; returns (target type, target record) pairs."""
    hs = ctx.state.hs
    out = []
    if associations is None:
        return out
    if not isinstance(associations, list):
        raise hs_fail(400, "VALIDATION_ERROR", "associations must be a list")
    for a in associations:
        to_id = str(((a or {}).get("to") or {}).get("id", ""))
        types = (a or {}).get("types") or []
        if not to_id or not isinstance(types, list) or not types:
            raise hs_fail(400, "VALIDATION_ERROR", "each association needs to.id and a non-empty types list")
        type_id = types[0].get("associationTypeId") if isinstance(types[0], dict) else None
        target_type = ASSOCIATION_TARGETS.get(type_id)  # type: ignore[arg-type]
        if target_type is None:
            raise hs_fail(400, "VALIDATION_ERROR", f"associationTypeId {type_id} is not valid from {otype}")
        target = hs.find(target_type, to_id)
        if target is None:
            raise hs_fail(400, "VALIDATION_ERROR", f"{HS_SINGULAR[target_type].title()} {to_id} does not exist; "
                          "cannot associate")
        out.append((target_type, target))
    return out


def note_logged(hs: HubSpotStore, contact: dict[str, Any], ts: int, *, sales_activity: bool = False) -> None:
    """Side effects of an engagement on a contact, as HubSpot's rollup properties show them."""
    props = contact["properties"]
    props["notes_last_updated"] = hs_datetime(ts)
    props["num_notes"] = str(int(props.get("num_notes") or 0) + 1)
    if sales_activity:
        props["hs_last_sales_activity_timestamp"] = hs_datetime(ts)
        props["notes_last_contacted"] = hs_datetime(ts)
    contact["updatedAt"] = advance(contact["updatedAt"])
    hs.version += 1


def create_object(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    hs = ctx.state.hs
    body = _object_body(ctx, {"properties", "associations", "objectWriteTraceId"})
    props = _validated(hs, otype, body.get("properties") or {})
    if otype == "notes" and not props.get("hs_timestamp"):
        raise hs_fail(400, "VALIDATION_ERROR", "Property values were not valid: hs_timestamp is required for notes",
                      errors=[{"message": "hs_timestamp is required", "code": "REQUIRED_FIELD",
                               "context": {"propertyName": ["hs_timestamp"]}}])
    if otype == "contacts" and props.get("email"):
        existing = hs.find("contacts", str(props["email"]), "email")
        if existing is not None:
            return hs_error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing['id']}")
    targets = _associate(ctx, otype, {}, body.get("associations"))
    rec = hs.apply(otype, None, props)
    for target_type, target in targets:
        rec["associations"].setdefault(target_type, []).append(target["id"])
        target["associations"].setdefault(otype, []).append(rec["id"])
        if otype == "notes" and target_type == "contacts":
            note_logged(hs, target, rec["createdAt"])
    names = sorted(set(props) | set(ctx.q_list("properties")) | set(("createdate", HS_MODIFIED_PROPERTY[otype],
                                                                       "hs_object_id")))
    return Resp(201, hs.render(otype, rec, names), content_type=JSON_HS)


def update_object(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    hs = ctx.state.hs
    rec = hs.find(otype, ctx.params["id"], ctx.q("idProperty"))
    if rec is None:
        return _not_found(ctx.params["id"])
    body = _object_body(ctx, {"properties", "objectWriteTraceId"})
    props = _validated(hs, otype, body.get("properties") or {})
    hs.apply(otype, rec, props)
    names = sorted(set(props) | {"createdate", HS_MODIFIED_PROPERTY[otype], "hs_object_id"})
    return Resp(200, hs.render(otype, rec, names), content_type=JSON_HS)


def archive_object(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    rec = ctx.state.hs.find(otype, ctx.params["id"])
    if rec is not None:
        ctx.state.hs.archive(rec)
    return Resp(204, content_type=JSON_HS)


def _batch_inputs(ctx: Ctx, body: dict[str, Any]) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise hs_fail(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required and must be a list")
    cap = ctx.state.limits["hubspot"]["batch_max"]
    if len(inputs) > cap:
        raise hs_fail(400, "VALIDATION_ERROR", f"Batch input size {len(inputs)} exceeds the maximum of {cap}",
                      context={"maxInputs": [str(cap)]})
    for i in inputs:
        if not isinstance(i, dict) or not isinstance(i.get("id"), str | int) or isinstance(i.get("id"), bool):
            raise hs_fail(400, "VALIDATION_ERROR", "each input needs an 'id'")
    return inputs


def batch_read(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    hs = ctx.state.hs
    started = now_ms()
    body = _object_body(ctx, {"inputs", "properties", "propertiesWithHistory", "idProperty"})
    inputs = _batch_inputs(ctx, body)
    properties = _properties_arg(body.get("properties"))
    id_property = body.get("idProperty")
    archived = _bool_param(ctx, "archived")
    results, missing, seen = [], [], set()
    for item in inputs:
        rid = str(item["id"])
        rec = hs.find(otype, rid, id_property, archived)
        if rec is None:
            missing.append(rid)
        elif rec["id"] not in seen:
            seen.add(rec["id"])
            results.append(hs.render(otype, rec, properties))
    errors = [_missing_error(otype, missing)] if missing else []
    return _batch_envelope(results, started, errors)


def batch_update(ctx: Ctx) -> Resp:
    otype = _otype(ctx)
    hs = ctx.state.hs
    started = now_ms()
    body = _object_body(ctx, {"inputs"})
    inputs = _batch_inputs(ctx, body)
    ids = [str(i["id"]) for i in inputs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise hs_fail(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {dupes}. IDs must be unique",
                      context={"ids": dupes})
    for item in inputs:
        unknown = set(item) - {"id", "properties", "idProperty", "objectWriteTraceId"}
        if unknown:
            raise hs_fail(400, "VALIDATION_ERROR", f"Invalid input JSON: Unrecognized field \"{sorted(unknown)[0]}\"")
        _validated(hs, otype, item.get("properties") or {})
    results, missing = [], []
    for item in inputs:
        rid = str(item["id"])
        rec = hs.find(otype, rid, item.get("idProperty"))
        if rec is None:
            missing.append(rid)
            continue
        props = item.get("properties") or {}
        hs.apply(otype, rec, props)
        names = sorted(set(props) | {"createdate", HS_MODIFIED_PROPERTY[otype], "hs_object_id"})
        results.append(hs.render(otype, rec, names))
    errors = [_missing_error(otype, missing, "update")] if missing else []
    return _batch_envelope(results, started, errors)


# --- associations (v4) ---------------------------------------------------------------------


def _association_type(name: str) -> str:
    otype = OBJECT_TYPE_NAMES.get(name.lower())
    if otype is None:
        raise hs_fail(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
    return otype


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"assoc-{offset}".encode()).decode()


def _page_offset(token: Any) -> int:
    if token is None or token == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(str(token).encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("assoc-") or not text[6:].isdigit():
        raise hs_fail(400, "VALIDATION_ERROR", f"Invalid after token: {token}")
    return int(text[6:])


def associations_batch_read(ctx: Ctx) -> Resp:
    """``POST /crm/v4/associations/{from}/{to}/batch/read``: the records of type ``to`` associated with each
    input, at most ``association_page_max`` per input and page (``paging.next.after`` goes back in that
    input's ``after``); an input with none (or unknown, or archived) is reported in ``errors`` (207)."""
    hs = ctx.state.hs
    started = now_ms()
    frm, to = _association_type(ctx.params["frm"]), _association_type(ctx.params["to"])
    type_id = HS_ASSOCIATION_TYPES.get((frm, to))
    if type_id is None:
        raise hs_fail(400, "VALIDATION_ERROR", f"There is no association definition from {frm} to {to}")
    body = _object_body(ctx, {"inputs"})
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise hs_fail(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required and must be a list")
    lim = ctx.state.limits["hubspot"]
    if len(inputs) > lim["association_batch_max"]:
        raise hs_fail(400, "VALIDATION_ERROR", f"Batch input size {len(inputs)} exceeds the maximum of "
                      f"{lim['association_batch_max']}", context={"maxInputs": [str(lim["association_batch_max"])]})
    page = max(1, lim["association_page_max"])
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str | int) or isinstance(item.get("id"), bool):
            raise hs_fail(400, "VALIDATION_ERROR", "each input needs an 'id'")
        unknown = set(item) - {"id", "after"}
        if unknown:
            raise hs_fail(400, "VALIDATION_ERROR", f"Invalid input JSON: Unrecognized field \"{sorted(unknown)[0]}\"")
        rid = str(item["id"])
        start = _page_offset(item.get("after"))
        rec = hs.find(frm, rid)
        linked = [] if rec is None else sorted((i for i in rec["associations"].get(to, []) if hs.find(to, i)),
                                               key=lambda i: int(i) if i.isdigit() else 0)
        if not linked:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                           "message": f"No {HS_SINGULAR[to].lower()} is associated with {HS_SINGULAR[frm].lower()} {rid}.",
                           "context": {"fromObjectId": [rid]}, "errors": [], "links": {}})
            continue
        chunk = linked[start : start + page]
        result: dict[str, Any] = {"from": {"id": rid}, "to": [
            {"toObjectId": i, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]}
            for i in chunk]}
        if start + page < len(linked):
            token = _page_token(start + page)
            result["paging"] = {"next": {"after": token, "link": f"{ctx.base_url}/crm/v4/objects/{frm}/{rid}/"
                                                                  f"associations/{to}?after={token}"}}
        results.append(result)
    return _batch_envelope(results, started, errors)


# --- owners ---------------------------------------------------------------------------------


def list_owners(ctx: Ctx) -> Resp:
    hs = ctx.state.hs
    try:
        limit = int(ctx.q("limit", "100") or 100)
        after = int(ctx.q("after", "0") or 0)
    except ValueError as exc:
        raise hs_fail(400, "VALIDATION_ERROR", "limit and after must be integers") from exc
    if not 1 <= limit <= 500:
        raise hs_fail(400, "VALIDATION_ERROR", "limit must be between 1 and 500")
    archived = _bool_param(ctx, "archived")
    email = (ctx.q("email") or "").lower()
    rows = [o for o in hs.owners.values() if o["archived"] == archived and (not email or
                                                                          (o["email"] or "").lower() == email)]
    page = rows[after : after + limit]
    out: dict[str, Any] = {"results": page}
    if after + limit < len(rows):
        nxt = str(after + limit)
        out["paging"] = {"next": {"after": nxt, "link": f"{ctx.base_url}/crm/v3/owners/?limit={limit}&after={nxt}"}}
    return Resp(200, out, content_type=JSON_HS)


def get_owner(ctx: Ctx) -> Resp:
    hs = ctx.state.hs
    key = ctx.params["id"]
    by = ctx.q("idProperty", "id")
    archived = _bool_param(ctx, "archived")
    for o in hs.owners.values():
        match = o["id"] == key if by != "userId" else str(o.get("userId")) == key
        if match and o["archived"] == archived:
            return Resp(200, o, content_type=JSON_HS)
    return hs_error(404, "OBJECT_NOT_FOUND", f"Owner {key} not found", context={"id": [key]})


_O = r"/crm/v3/objects/(?P<otype>[a-z_0-9]+)"


def _n(template: str) -> Callable[[dict[str, str]], str]:
    return lambda p: template.replace("{otype}", p.get("otype", ""))


ROUTES: list[tuple[str, str, str, Any, Any]] = [
    ("POST", _O + r"/search", "hubspot", _n("POST /crm/v3/objects/{otype}/search"), search),
    ("POST", _O + r"/batch/read", "hubspot", _n("POST /crm/v3/objects/{otype}/batch/read"), batch_read),
    ("POST", _O + r"/batch/update", "hubspot", _n("POST /crm/v3/objects/{otype}/batch/update"), batch_update),
    ("GET", _O, "hubspot", _n("GET /crm/v3/objects/{otype}"), list_objects),
    ("POST", _O, "hubspot", _n("POST /crm/v3/objects/{otype}"), create_object),
    ("GET", _O + r"/(?P<id>[^/]+)", "hubspot", _n("GET /crm/v3/objects/{otype}/{id}"), get_object),
    ("PATCH", _O + r"/(?P<id>[^/]+)", "hubspot", _n("PATCH /crm/v3/objects/{otype}/{id}"), update_object),
    ("DELETE", _O + r"/(?P<id>[^/]+)", "hubspot", _n("DELETE /crm/v3/objects/{otype}/{id}"), archive_object),
    ("POST", r"/crm/v4/associations/(?P<frm>[^/]+)/(?P<to>[^/]+)/batch/read", "hubspot",
     lambda p: f"POST /crm/v4/associations/{p.get('frm', '')}/{p.get('to', '')}/batch/read", associations_batch_read),
    ("GET", r"/crm/v3/owners", "hubspot", "GET /crm/v3/owners", list_owners),
    ("GET", r"/crm/v3/owners/(?P<id>[^/]+)", "hubspot", "GET /crm/v3/owners/{id}", get_owner),
]
