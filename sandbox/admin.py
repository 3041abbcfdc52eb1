"""The admin API under ``/__sandbox`` (a prefix neither CRM uses).

Tests, benchmarks and ``leadroute demo`` use it to read the full state, load data in bulk
without spending API calls, act as a sales rep would in the CRM's UI (change a status, log an
activity, take ownership, convert, delete), inject faults, tune limits and read request
counters.  It is not rate limited, not counted and needs no token: it listens on loopback only.
"""

from __future__ import annotations

import calendar
import json
from datetime import date
from typing import Any

from .clock import hs_datetime, now_ms, today_str, wall_ms
from .faults import merge_limits
from .http import Ctx, Resp
from .hubspot import note_logged
from .ids import to_sf18
from .schema import HS_DEAL_STAGE_BY_ID, HS_DEAL_STAGES, HS_LIFECYCLE, OPPORTUNITY_STAGES, STAGE_BY_NAME
from .state import RequestError, SandboxState, generate

A = "/__sandbox"


def _body(ctx: Ctx) -> Any:
    if not ctx.body.strip():
        return {}
    try:
        return json.loads(ctx.body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"admin body is not valid JSON: {exc}") from exc


def _obj(ctx: Ctx) -> dict[str, Any]:
    body = _body(ctx)
    if not isinstance(body, dict):
        raise ValueError("admin body must be a JSON object")
    return body


def _app(ctx: Ctx) -> Any:
    return ctx.app


def info(ctx: Ctx) -> Resp:
    """Everything a client needs to connect (used by the subprocess runner and the CLI)."""
    s = ctx.state
    return Resp(200, {
        "base_url": ctx.base_url,
        "salesforce_instance_url": ctx.base_url,
        "salesforce_login_url": ctx.base_url,
        "salesforce_api_version": s.sf_api_version,
        "salesforce_org_id": s.sf.org_id,
        **{f"salesforce_{k}": v for k, v in s.sf_credentials.items()},
        "hubspot_base_url": ctx.base_url,
        "hubspot_access_token": s.hs_access_token,
        "hubspot_portal_id": s.hs.portal_id,
        "admin_url": ctx.base_url + A,
    })


def health(ctx: Ctx) -> Resp:
    return Resp(200, {"ok": True})


def full_state(ctx: Ctx) -> Resp:
    return Resp(200, ctx.state.to_json())


def reset(ctx: Ctx) -> Resp:
    """Back to the seed the sandbox started with, or to the seed given in the body (this time only)."""
    body = _obj(ctx)
    seed = body.get("seed")
    if seed is not None and not isinstance(seed, dict):
        raise ValueError("seed must be an object")
    ctx.state.reset(seed)
    _app(ctx).counters.clear()
    return Resp(200, {"ok": True})


def do_generate(ctx: Ctx) -> Resp:
    made = generate(ctx.state, _obj(ctx))
    return Resp(200, {"created": made})


def counters(ctx: Ctx) -> Resp:
    return Resp(200, _app(ctx).counters.to_json())


def clear_counters(ctx: Ctx) -> Resp:
    _app(ctx).counters.clear()
    return Resp(200, {"ok": True})


def get_faults(ctx: Ctx) -> Resp:
    return Resp(200, ctx.state.faults.to_json())


def put_faults(ctx: Ctx) -> Resp:
    body = _obj(ctx)
    ctx.state.faults.reset()
    ctx.state.faults.configure(body)
    return Resp(200, ctx.state.faults.to_json())


def patch_faults(ctx: Ctx) -> Resp:
    ctx.state.faults.configure(_obj(ctx))
    return Resp(200, ctx.state.faults.to_json())


def clear_faults(ctx: Ctx) -> Resp:
    ctx.state.faults.reset()
    return Resp(200, ctx.state.faults.to_json())


def add_scripted(ctx: Ctx) -> Resp:
    body = _body(ctx)
    items = body if isinstance(body, list) else [body]
    for item in items:
        ctx.state.faults.add_scripted(item)
    return Resp(200, ctx.state.faults.to_json())


def get_limits(ctx: Ctx) -> Resp:
    s = ctx.state
    return Resp(200, {"limits": s.limits, "usage": _usage(s)})


def _usage(s: SandboxState) -> dict[str, Any]:
    now = wall_ms()
    return {
        "salesforce": {"api_requests": s.sf_api_used},
        "hubspot": {"daily": s.hs_daily_used, "ten_second_window": s.hs_ten_second.used(now),
                    "search_second_window": s.hs_search_second.used(now)},
    }


def patch_limits(ctx: Ctx) -> Resp:
    body = _obj(ctx)
    merged = {api: dict(v) for api, v in ctx.state.limits.items()}
    for api, values in body.items():
        if not isinstance(values, dict):
            raise ValueError(f"limits.{api} must be an object")
        merged.setdefault(api, {}).update(values)
    ctx.state.limits = merge_limits(merged)
    return Resp(200, {"limits": ctx.state.limits, "usage": _usage(ctx.state)})


def reset_usage(ctx: Ctx) -> Resp:
    s = ctx.state
    s.sf_api_used = 0
    s.hs_daily_used = 0
    s.hs_ten_second.clear()
    s.hs_search_second.clear()
    return Resp(200, {"limits": s.limits, "usage": _usage(s)})


def expire_sessions(ctx: Ctx) -> Resp:
    n = len(ctx.state.sessions)
    ctx.state.sessions.clear()
    return Resp(200, {"expired": n})


# --- Salesforce records and rep actions ------------------------------------------------------


def _sf_obj(ctx: Ctx) -> Any:
    obj = ctx.state.sf.sobject(ctx.params["sobject"])
    if obj is None:
        raise RequestError(404, {"error": f"unknown sObject {ctx.params['sobject']}"})
    return obj


def _sf_rec(ctx: Ctx) -> tuple[Any, dict[str, Any]]:
    obj = _sf_obj(ctx)
    found = ctx.state.sf.by_id.get(to_sf18(ctx.params["id"]))
    if found is None or found[0] != obj.name:
        raise RequestError(404, {"error": f"no {obj.name} {ctx.params['id']}"})
    return obj, found[1]


def _render_sf(ctx: Ctx, obj: Any, rec: dict[str, Any]) -> dict[str, Any]:
    return ctx.state.sf.render(obj.name, rec, ctx.state.sf_api_version)


def _rep(ctx: Ctx, rec: dict[str, Any], body: dict[str, Any]) -> str | None:
    """Who is acting: ``as`` in the body, else the record's owner if a user, else the integration user."""
    if body.get("as"):
        return to_sf18(str(body["as"]))
    owner = rec.get("OwnerId")
    if owner and owner.startswith("005"):
        return owner
    return ctx.state.sf.integration_user_id


def sf_list(ctx: Ctx) -> Resp:
    obj = _sf_obj(ctx)
    rows = ctx.state.sf.live(obj.name, include_deleted=True)
    return Resp(200, {"totalSize": len(rows), "records": [_render_sf(ctx, obj, r) for r in rows]})


def sf_create(ctx: Ctx) -> Resp:
    """Bulk load (``{"records": [...]}``) or create one record as a rep/web form would."""
    obj = _sf_obj(ctx)
    body = _body(ctx)
    sf = ctx.state.sf
    if isinstance(body, dict) and "records" in body:
        made = [sf.insert_raw(obj.name, r)["Id"] for r in body["records"]]
        return Resp(201, {"ids": made})
    if not isinstance(body, dict):
        raise ValueError("body must be a record object or {\"records\": [...]}")
    assign = bool(body.pop("assign", False))
    actor = to_sf18(str(body.pop("as"))) if body.get("as") else sf.integration_user_id
    values, read_only = sf.parse_payload(obj, body)
    err = sf.check_values(obj, values, read_only, creating=True)
    if err:
        raise RequestError(400, [err])
    rec = sf.apply(obj, None, values, actor=actor, auto_assign=assign)
    return Resp(201, _render_sf(ctx, obj, rec))


def sf_get(ctx: Ctx) -> Resp:
    obj, rec = _sf_rec(ctx)
    return Resp(200, _render_sf(ctx, obj, rec))


def sf_edit(ctx: Ctx) -> Resp:
    """Edit fields as a rep in the UI (validated like the API; assignment rules do not run)."""
    obj, rec = _sf_rec(ctx)
    body = _obj(ctx)
    actor = _rep(ctx, rec, body)
    body.pop("as", None)
    sf = ctx.state.sf
    values, read_only = sf.parse_payload(obj, body)
    err = sf.check_values(obj, values, read_only, creating=False, existing=rec)
    if err:
        raise RequestError(400, [err])
    sf.apply(obj, rec, values, actor=actor, auto_assign=False)
    return Resp(200, _render_sf(ctx, obj, rec))


def sf_delete(ctx: Ctx) -> Resp:
    obj, rec = _sf_rec(ctx)
    ctx.state.sf.delete(rec, _rep(ctx, rec, {}))
    return Resp(200, _render_sf(ctx, obj, rec))


def sf_status(ctx: Ctx) -> Resp:
    _sf_rec(ctx)
    body = _obj(ctx)
    if "status" not in body:
        raise ValueError("body needs 'status'")
    ctx.body = json.dumps({"Status": body["status"], **({"as": body["as"]} if body.get("as") else {})}).encode()
    return sf_edit(ctx)


def sf_owner(ctx: Ctx) -> Resp:
    _sf_rec(ctx)
    body = _obj(ctx)
    if not body.get("owner_id"):
        raise ValueError("body needs 'owner_id'")
    ctx.body = json.dumps({"OwnerId": body["owner_id"], **({"as": body["as"]} if body.get("as") else {})}).encode()
    return sf_edit(ctx)


def sf_activity(ctx: Ctx) -> Resp:
    """Log a completed Task on the lead/contact, as a rep's call or email would."""
    obj, rec = _sf_rec(ctx)
    if obj.name not in ("Lead", "Contact"):
        raise ValueError("activities can be logged on Lead or Contact")
    body = _obj(ctx)
    actor = _rep(ctx, rec, body)
    kind = str(body.get("type", "Call"))
    sf = ctx.state.sf
    task_obj = sf.schema["Task"]
    values = {
        "Subject": body.get("subject", f"{kind} with {rec.get('Name') or rec['Id']}"),
        "Status": "Completed", "Priority": "Normal", "Type": kind,
        "TaskSubtype": "Call" if kind == "Call" else "Email" if kind == "Email" else "Task",
        "WhoId": rec["Id"], "OwnerId": actor, "ActivityDate": today_str(),
        "Description": body.get("description"),
    }
    task = sf.apply(task_obj, None, values, actor=actor, auto_assign=False)
    task["CompletedDateTime"] = task["CreatedDate"]
    rec["LastActivityDate"] = today_str()
    sf.touch(rec, actor, modstamp_only=True)
    return Resp(201, {"task": _render_sf(ctx, task_obj, task), "record": _render_sf(ctx, obj, rec)})


def _end_of_quarter(today: date) -> str:
    month = (today.month - 1) // 3 * 3 + 3
    return date(today.year, month, calendar.monthrange(today.year, month)[1]).isoformat()


def sf_convert(ctx: Ctx) -> Resp:
    """Convert a lead as ``convertLead`` does: creates (or reuses by name) an Account, a Contact and, unless
    ``"opportunity": false``, an Opportunity (``"opportunity": {field: value}`` sets its fields; by default it
    is named after the company, at the first stage, closing at the end of the quarter), all owned by the lead
    owner; the lead gets ``IsConverted``, ``ConvertedDate`` (today) and the ``Converted...Id`` fields."""
    obj, rec = _sf_rec(ctx)
    if obj.name != "Lead":
        raise ValueError("only leads can be converted")
    if rec.get("IsConverted"):
        raise ValueError("lead is already converted")
    body = _obj(ctx)
    actor = _rep(ctx, rec, body)
    sf = ctx.state.sf
    owner = rec.get("OwnerId") if (rec.get("OwnerId") or "").startswith("005") else actor
    company = rec.get("Company") or "Unknown"
    spec = body.get("opportunity", True)
    if not isinstance(spec, bool | dict):
        raise ValueError("'opportunity' must be true, false or an object of Opportunity fields")
    opportunity_values: dict[str, Any] | None = None
    opp_obj = sf.schema["Opportunity"]
    if spec is not False:  # checked before anything is created, so a bad field leaves the lead as it was
        given, read_only = sf.parse_payload(opp_obj, spec if isinstance(spec, dict) else {})
        opportunity_values = {"Name": f"{company}-", "StageName": OPPORTUNITY_STAGES[0].name,
                              "CloseDate": _end_of_quarter(date.fromisoformat(today_str())), "OwnerId": owner,
                              "LeadSource": rec.get("LeadSource"), **given}
        err = sf.check_values(opp_obj, opportunity_values, read_only, creating=True)
        if err:
            raise RequestError(400, [err])
    account = next((a for a in sf.live("Account") if (a.get("Name") or "").lower() == company.lower()), None)
    if account is None:
        account = sf.apply(sf.schema["Account"], None, {"Name": company, "Website": rec.get("Website"),
                                                        "OwnerId": owner}, actor=actor, auto_assign=False)
    contact = sf.apply(sf.schema["Contact"], None, {
        "FirstName": rec.get("FirstName"), "LastName": rec.get("LastName"), "Email": rec.get("Email"),
        "Phone": rec.get("Phone"), "Title": rec.get("Title"), "AccountId": account["Id"], "OwnerId": owner,
        "LeadSource": rec.get("LeadSource"),
    }, actor=actor, auto_assign=False)
    opportunity = None
    if opportunity_values is not None:
        opportunity = sf.apply(opp_obj, None, {**opportunity_values, "AccountId": account["Id"]}, actor=actor,
                               auto_assign=False)
    rec.update({"IsConverted": True, "Status": "Closed - Converted", "ConvertedDate": today_str(),
                "ConvertedAccountId": account["Id"], "ConvertedContactId": contact["Id"],
                "ConvertedOpportunityId": opportunity["Id"] if opportunity else None})
    sf.touch(rec, actor)
    return Resp(200, {"lead": _render_sf(ctx, obj, rec), "account_id": account["Id"], "contact_id": contact["Id"],
                      "opportunity_id": opportunity["Id"] if opportunity else None})


def sf_stage(ctx: Ctx) -> Resp:
    """Move an opportunity as a rep would: ``"stage"`` (a StageName), or ``"won": true|false`` for Closed Won or
    Closed Lost, and optionally ``"amount"`` and ``"close_date"``. Closing it without a close date closes it
    today; ``IsClosed``, ``IsWon`` and ``Probability`` follow the stage."""
    obj, _ = _sf_rec(ctx)
    if obj.name != "Opportunity":
        raise ValueError("only opportunities have a stage")
    body = _obj(ctx)
    values: dict[str, Any] = {}
    if "stage" in body:
        values["StageName"] = body["stage"]
    elif "won" in body:
        if not isinstance(body["won"], bool):
            raise ValueError("'won' must be true or false")
        values["StageName"] = "Closed Won" if body["won"] else "Closed Lost"
    if "amount" in body:
        values["Amount"] = body["amount"]
    if "close_date" in body:
        values["CloseDate"] = body["close_date"]
    if not values:
        raise ValueError("body needs 'stage' or 'won' (and optionally 'amount' and 'close_date')")
    stage = STAGE_BY_NAME.get(str(values.get("StageName") or "").lower())
    if stage is not None and stage.closed and "CloseDate" not in values:
        values["CloseDate"] = today_str()
    ctx.body = json.dumps({**values, **({"as": body["as"]} if body.get("as") else {})}).encode()
    return sf_edit(ctx)


# --- HubSpot records and rep actions ---------------------------------------------------------


def _hs_type(ctx: Ctx) -> str:
    otype = ctx.params["otype"]
    if otype not in ctx.state.hs.objects:
        raise RequestError(404, {"error": f"unknown HubSpot object type {otype}"})
    return otype


def _hs_rec(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    otype = _hs_type(ctx)
    rec = ctx.state.hs.objects[otype].get(ctx.params["id"])
    if rec is None:
        raise RequestError(404, {"error": f"no {otype} {ctx.params['id']}"})
    return otype, rec


def _render_hs(ctx: Ctx, otype: str, rec: dict[str, Any]) -> dict[str, Any]:
    hs = ctx.state.hs
    out = hs.render(otype, rec, sorted(set(hs.props[otype]) | set(rec["properties"])))
    out["associations"] = rec["associations"]
    return out


def hs_list(ctx: Ctx) -> Resp:
    otype = _hs_type(ctx)
    rows = list(ctx.state.hs.objects[otype].values())
    return Resp(200, {"total": len(rows), "results": [_render_hs(ctx, otype, r) for r in rows]})


def hs_create(ctx: Ctx) -> Resp:
    otype = _hs_type(ctx)
    body = _obj(ctx)
    hs = ctx.state.hs
    if "records" in body:
        made = [hs.insert_raw(otype, r)["id"] for r in body["records"]]
        return Resp(201, {"ids": made})
    props = body.get("properties", body)
    problems = hs.validate_properties(otype, props)
    if problems:
        raise RequestError(400, {"error": "invalid properties", "problems": problems})
    rec = hs.apply(otype, None, props)
    return Resp(201, _render_hs(ctx, otype, rec))


def hs_get(ctx: Ctx) -> Resp:
    otype, rec = _hs_rec(ctx)
    return Resp(200, _render_hs(ctx, otype, rec))


def _hs_edit(ctx: Ctx, otype: str, rec: dict[str, Any], props: dict[str, Any]) -> Resp:
    hs = ctx.state.hs
    problems = hs.validate_properties(otype, props)
    if problems:
        raise RequestError(400, {"error": "invalid properties", "problems": problems})
    hs.apply(otype, rec, props)
    return Resp(200, _render_hs(ctx, otype, rec))


def hs_edit(ctx: Ctx) -> Resp:
    otype, rec = _hs_rec(ctx)
    body = _obj(ctx)
    return _hs_edit(ctx, otype, rec, body.get("properties", body))


def hs_delete(ctx: Ctx) -> Resp:
    otype, rec = _hs_rec(ctx)
    ctx.state.hs.archive(rec)
    return Resp(200, _render_hs(ctx, otype, rec))


def hs_status(ctx: Ctx) -> Resp:
    otype, rec = _hs_rec(ctx)
    body = _obj(ctx)
    if "status" not in body:
        raise ValueError("body needs 'status' (an hs_lead_status value such as IN_PROGRESS)")
    return _hs_edit(ctx, otype, rec, {"hs_lead_status": body["status"]})


def hs_owner(ctx: Ctx) -> Resp:
    otype, rec = _hs_rec(ctx)
    body = _obj(ctx)
    if not body.get("owner_id"):
        raise ValueError("body needs 'owner_id'")
    return _hs_edit(ctx, otype, rec, {"hubspot_owner_id": str(body["owner_id"])})


def hs_activity(ctx: Ctx) -> Resp:
    """Log a note/call on a contact: creates an associated note and updates the activity rollups."""
    otype, rec = _hs_rec(ctx)
    if otype != "contacts":
        raise ValueError("activities can be logged on contacts")
    body = _obj(ctx)
    hs = ctx.state.hs
    ts = now_ms()
    owner = str(body.get("as") or rec["properties"].get("hubspot_owner_id") or "")
    kind = str(body.get("type", "CALL")).upper()
    note = hs.apply("notes", None, {"hs_timestamp": hs_datetime(ts),
                                    "hs_note_body": body.get("body", f"{kind.title()} logged by owner {owner}"),
                                    **({"hubspot_owner_id": owner} if owner else {})})
    note["associations"]["contacts"] = [rec["id"]]
    rec["associations"].setdefault("notes", []).append(note["id"])
    note_logged(hs, rec, ts, sales_activity=kind in ("CALL", "EMAIL", "MEETING"))
    return Resp(201, {"note": _render_hs(ctx, "notes", note), "record": _render_hs(ctx, otype, rec)})


def hs_convert(ctx: Ctx) -> Resp:
    otype, rec = _hs_rec(ctx)
    return _hs_edit(ctx, otype, rec, {"lifecyclestage": "opportunity", "hs_lead_status": "OPEN_DEAL"})


def _lifecycle_at_least(ctx: Ctx, contact: dict[str, Any], stage: str) -> None:
    """HubSpot's lifecycle-stage sync: move the contact up to ``stage``, never back."""
    order = [s for s in HS_LIFECYCLE if s != "other"]
    current = contact["properties"].get("lifecyclestage")
    if current not in order or order.index(current) < order.index(stage):
        ctx.state.hs.apply("contacts", contact, {"lifecyclestage": stage})


def hs_add_deal(ctx: Ctx) -> Resp:
    """A rep creates a deal for a contact: associated both ways, owned by the contact's owner, named after the
    contact, at the pipeline's first stage unless the body (deal properties, or ``{"properties": {...}}``) says
    otherwise; the contact's lifecycle stage moves up to ``opportunity``."""
    otype, rec = _hs_rec(ctx)
    if otype != "contacts":
        raise ValueError("deals are added to contacts")
    body = _obj(ctx)
    hs = ctx.state.hs
    given = body.get("properties", body)
    if not isinstance(given, dict):
        raise ValueError("deal properties must be an object")
    name = " ".join(p for p in (rec["properties"].get("firstname"), rec["properties"].get("lastname")) if p)
    props = {"dealname": f"{name or rec['properties'].get('email') or rec['id']} deal",
             "dealstage": HS_DEAL_STAGES[0].id, "pipeline": "default", **given}
    if rec["properties"].get("hubspot_owner_id") and "hubspot_owner_id" not in given:
        props["hubspot_owner_id"] = rec["properties"]["hubspot_owner_id"]
    problems = hs.validate_properties("deals", props)
    if problems:
        raise RequestError(400, {"error": "invalid properties", "problems": problems})
    deal = hs.apply("deals", None, props)
    hs.associate("deals", deal, "contacts", rec)
    _lifecycle_at_least(ctx, rec, "opportunity")
    return Resp(201, {"deal": _render_hs(ctx, "deals", deal), "record": _render_hs(ctx, "contacts", rec)})


def hs_deal_stage(ctx: Ctx) -> Resp:
    """Move a deal as a rep would: ``"stage"`` (a dealstage id), or ``"won": true|false`` for closedwon or
    closedlost, and optionally ``"amount"`` and ``"closedate"``. A closed deal without a close date closes now;
    a won deal makes its contacts customers."""
    otype, rec = _hs_rec(ctx)
    if otype != "deals":
        raise ValueError("only deals have a stage")
    body = _obj(ctx)
    props: dict[str, Any] = {}
    if "stage" in body:
        props["dealstage"] = body["stage"]
    elif "won" in body:
        if not isinstance(body["won"], bool):
            raise ValueError("'won' must be true or false")
        props["dealstage"] = "closedwon" if body["won"] else "closedlost"
    for key in ("amount", "closedate"):
        if key in body:
            props[key] = body[key]
    if not props:
        raise ValueError("body needs 'stage' or 'won' (and optionally 'amount' and 'closedate')")
    resp = _hs_edit(ctx, otype, rec, props)
    stage = HS_DEAL_STAGE_BY_ID.get(rec["properties"].get("dealstage") or "")
    if stage is not None and stage.won:
        hs = ctx.state.hs
        for contact_id in rec["associations"].get("contacts", []):
            contact = hs.find("contacts", contact_id)
            if contact is not None:
                _lifecycle_at_least(ctx, contact, "customer")
    return resp


def hs_owner_edit(ctx: Ctx) -> Resp:
    """Archive/unarchive or rename an owner (e.g. a rep who left)."""
    owner = ctx.state.hs.owners.get(ctx.params["id"])
    if owner is None:
        raise RequestError(404, {"error": f"no owner {ctx.params['id']}"})
    body = _obj(ctx)
    for key in ("archived", "email", "firstName", "lastName", "teams"):
        if key in body:
            owner[key] = body[key]
    owner["updatedAt"] = hs_datetime(now_ms())
    return Resp(200, owner)


def seed_pipeline(ctx: Ctx) -> Resp:
    """Open (and closed) pipeline per owner, for ``least_loaded`` pools that weigh it: ``{"salesforce": {owner id:
    {"open": n, "closed": m}}, "hubspot": {...}}`` (a bare number means that many open). Salesforce gets
    Opportunities (open at the first stage, closed as Closed Lost), HubSpot deals (``appointmentscheduled`` and
    ``closedlost``), each owned by the owner given. Returns the ids made, by CRM."""
    body = _obj(ctx)
    unknown = set(body) - {"salesforce", "hubspot"}
    if unknown:
        raise ValueError(f"unknown CRM(s) {sorted(unknown)}: use salesforce and/or hubspot")
    made: dict[str, list[str]] = {"salesforce": [], "hubspot": []}
    for crm, owners in body.items():
        if not isinstance(owners, dict):
            raise ValueError(f"'{crm}' must map owner ids to counts")
        for owner, spec in owners.items():
            counts = {"open": spec} if isinstance(spec, int) else spec
            if not isinstance(counts, dict) or set(counts) - {"open", "closed"} or not all(
                    isinstance(v, int) and v >= 0 for v in counts.values()):
                raise ValueError(f"{crm}.{owner}: give a count, or {{\"open\": n, \"closed\": m}}")
            for closed in (False, True):
                for n in range(counts.get("closed" if closed else "open", 0)):
                    if crm == "salesforce":
                        rec = ctx.state.sf.insert_raw("Opportunity", {
                            "Name": f"Pipeline {owner} {n}", "OwnerId": to_sf18(str(owner)),
                            "StageName": "Closed Lost" if closed else OPPORTUNITY_STAGES[0].name,
                            "CloseDate": today_str()})
                        made[crm].append(rec["Id"])
                    else:
                        rec = ctx.state.hs.insert_raw("deals", {"properties": {
                            "dealname": f"Pipeline {owner} {n}", "hubspot_owner_id": str(owner),
                            "dealstage": "closedlost" if closed else HS_DEAL_STAGES[0].id}})
                        made[crm].append(rec["id"])
    return Resp(201, made)


def start_recording(ctx: Ctx) -> Resp:
    _app(ctx).recording = []
    return Resp(200, {"recording": True})


def get_recording(ctx: Ctx) -> Resp:
    return Resp(200, {"exchanges": _app(ctx).recording or []})


def stop_recording(ctx: Ctx) -> Resp:
    app = _app(ctx)
    exchanges, app.recording = app.recording or [], None
    return Resp(200, {"exchanges": exchanges})


S = A + r"/salesforce/(?P<sobject>\w+)"
H = A + r"/hubspot/(?P<otype>contacts|companies|notes|deals)"

ROUTES: list[tuple[str, str, str, Any, Any]] = [
    ("GET", A + r"/health", "admin", "health", health),
    ("GET", A + r"/info", "admin", "info", info),
    ("GET", A + r"/state", "admin", "state", full_state),
    ("POST", A + r"/reset", "admin", "reset", reset),
    ("POST", A + r"/generate", "admin", "generate", do_generate),
    ("GET", A + r"/counters", "admin", "counters", counters),
    ("DELETE", A + r"/counters", "admin", "counters", clear_counters),
    ("GET", A + r"/faults", "admin", "faults", get_faults),
    ("PUT", A + r"/faults", "admin", "faults", put_faults),
    ("PATCH", A + r"/faults", "admin", "faults", patch_faults),
    ("DELETE", A + r"/faults", "admin", "faults", clear_faults),
    ("POST", A + r"/faults/scripted", "admin", "faults", add_scripted),
    ("GET", A + r"/limits", "admin", "limits", get_limits),
    ("PATCH", A + r"/limits", "admin", "limits", patch_limits),
    ("POST", A + r"/limits/reset-usage", "admin", "limits", reset_usage),
    ("POST", A + r"/salesforce/expire-sessions", "admin", "sessions", expire_sessions),
    ("POST", A + r"/recording", "admin", "recording", start_recording),
    ("POST", A + r"/pipeline", "admin", "pipeline", seed_pipeline),
    ("GET", A + r"/recording", "admin", "recording", get_recording),
    ("DELETE", A + r"/recording", "admin", "recording", stop_recording),
    ("PATCH", A + r"/hubspot/owners/(?P<id>[^/]+)", "admin", "owners", hs_owner_edit),
    ("GET", H, "admin", "hs", hs_list),
    ("POST", H, "admin", "hs", hs_create),
    ("GET", H + r"/(?P<id>[^/]+)", "admin", "hs", hs_get),
    ("PATCH", H + r"/(?P<id>[^/]+)", "admin", "hs", hs_edit),
    ("DELETE", H + r"/(?P<id>[^/]+)", "admin", "hs", hs_delete),
    ("POST", H + r"/(?P<id>[^/]+)/status", "admin", "hs", hs_status),
    ("POST", H + r"/(?P<id>[^/]+)/owner", "admin", "hs", hs_owner),
    ("POST", H + r"/(?P<id>[^/]+)/activity", "admin", "hs", hs_activity),
    ("POST", H + r"/(?P<id>[^/]+)/convert", "admin", "hs", hs_convert),
    ("POST", H + r"/(?P<id>[^/]+)/deal", "admin", "hs", hs_add_deal),
    ("POST", H + r"/(?P<id>[^/]+)/stage", "admin", "hs", hs_deal_stage),
    ("GET", S, "admin", "sf", sf_list),
    ("POST", S, "admin", "sf", sf_create),
    ("GET", S + r"/(?P<id>\w+)", "admin", "sf", sf_get),
    ("PATCH", S + r"/(?P<id>\w+)", "admin", "sf", sf_edit),
    ("DELETE", S + r"/(?P<id>\w+)", "admin", "sf", sf_delete),
    ("POST", S + r"/(?P<id>\w+)/status", "admin", "sf", sf_status),
    ("POST", S + r"/(?P<id>\w+)/owner", "admin", "sf", sf_owner),
    ("POST", S + r"/(?P<id>\w+)/activity", "admin", "sf", sf_activity),
    ("POST", S + r"/(?P<id>\w+)/convert", "admin", "sf", sf_convert),
    ("POST", S + r"/(?P<id>\w+)/stage", "admin", "sf", sf_stage),
]
