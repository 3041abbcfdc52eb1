"""Salesforce REST API emulation: OAuth, SOQL query, sObjects, sObject Collections, limits.

Error bodies follow Salesforce exactly (a JSON list of ``{message, errorCode, fields}``; per-record
collection errors use ``statusCode``) because simple-salesforce maps status codes to exceptions
and the connectors branch on ``errorCode``.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs

from .clock import wall_ms
from .http import Ctx, Resp
from .ids import KEY_PREFIXES, is_sf_id, sf_type_of, to_sf18
from .soql import CompiledQuery, SoqlError, compile_query, format_value, sort_records
from .state import RequestError, SfSession, record_error, sf_error

V = r"/services/data/v(?P<ver>\d{2,3}\.\d)"
MAX_CURSORS = 200


# --- auth and limits ------------------------------------------------------------------------


def bearer(ctx: Ctx) -> str | None:
    auth = ctx.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token:
        return token.strip()
    return None


def invalid_session() -> Resp:
    return Resp(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                headers=[(b"www-authenticate", b'Token realm="Salesforce", error="invalid_token"')])


def authenticate(ctx: Ctx) -> Resp | None:
    token = bearer(ctx)
    session = ctx.state.sessions.get(token) if token else None
    if session is None:
        return invalid_session()
    if wall_ms() >= session.expires_ms:
        ctx.state.sessions.pop(session.token, None)
        return invalid_session()
    ctx.session = session
    return None


def charge_api(ctx: Ctx) -> Resp | None:
    """Count the call against the daily allocation; Salesforce answers 403 once it is spent."""
    state = ctx.state
    if state.sf_api_used >= state.limits["salesforce"]["daily_api_requests"]:
        return Resp(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    state.sf_api_used += 1
    return None


def new_session(ctx: Ctx, user_id: str) -> SfSession:
    state = ctx.state
    token = state.sf.org_id[:15] + "!AQ" + secrets.token_urlsafe(72)[:96]
    issued = wall_ms()
    session = SfSession(token, user_id, issued, issued + state.limits["salesforce"]["session_ttl_seconds"] * 1000)
    state.sessions[token] = session
    return session


def _user_for(ctx: Ctx, username: str) -> str | None:
    wanted = username.lower()
    for uid, rec in ctx.state.sf.records["User"].items():
        if (rec.get("Username") or "").lower() == wanted and rec.get("IsActive", True):
            return uid
    if wanted == ctx.state.sf_credentials["username"].lower():
        return ctx.state.sf.integration_user_id
    return None


def _password_ok(ctx: Ctx, password: str) -> bool:
    creds = ctx.state.sf_credentials
    return password in (creds["password"], creds["password"] + creds["security_token"])


def _oauth_error(error: str, description: str, status: int = 400) -> Resp:
    return Resp(status, {"error": error, "error_description": description})


def token_endpoint(ctx: Ctx) -> Resp:
    """OAuth 2.0 token endpoint: username-password and client-credentials flows."""
    form = {k: v[0] for k, v in parse_qs(ctx.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    creds = ctx.state.sf_credentials
    client_id = form.get("client_id")
    client_secret = form.get("client_secret")
    auth = ctx.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return _oauth_error("invalid_client", "invalid client credentials")
    grant = form.get("grant_type")
    if grant not in ("password", "client_credentials"):
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    if client_id != creds["client_id"]:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    if client_secret != creds["client_secret"]:
        return _oauth_error("invalid_client", "invalid client credentials")
    if grant == "password":
        user_id = _user_for(ctx, form.get("username", ""))
        if user_id is None or not _password_ok(ctx, form.get("password", "")):
            return _oauth_error("invalid_grant", "authentication failure")
    else:
        user_id = ctx.state.sf.integration_user_id
    session = new_session(ctx, user_id)
    signature = base64.b64encode(secrets.token_bytes(32)).decode()
    return Resp(200, {
        "access_token": session.token,
        "instance_url": ctx.base_url,
        "id": f"{ctx.base_url}/id/{ctx.state.sf.org_id}/{user_id}",
        "token_type": "Bearer",
        "issued_at": str(session.issued_ms),
        "signature": signature,
        "scope": "api",
    })


def _xml_field(body: str, name: str) -> str | None:
    m = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", body, re.DOTALL)
    return html.unescape(m.group(1)) if m else None


def soap_login(ctx: Ctx) -> Resp:
    """SOAP ``login()`` — simple-salesforce uses it for username/password/security-token logins."""
    body = ctx.body.decode("utf-8", "replace")
    username = _xml_field(body, "username") or ""
    password = _xml_field(body, "password") or ""
    user_id = _user_for(ctx, username)
    if user_id is None or not _password_ok(ctx, password):
        fault = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
            "<faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, "
            "security token; or user locked out.</faultstring><detail><sf:LoginFault>"
            "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, "
            "security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail>"
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        )
        return Resp(500, raw=fault.encode(), content_type=b"text/xml;charset=UTF-8")
    session = new_session(ctx, user_id)
    ver = ctx.params.get("ver", ctx.state.sf_api_version)
    org = ctx.state.sf.org_id
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{ctx.base_url}/services/Soap/m/{ver}/{org}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
        f"<serverUrl>{ctx.base_url}/services/Soap/u/{ver}/{org}</serverUrl>"
        f"<sessionId>{html.escape(session.token)}</sessionId><userId>{user_id}</userId>"
        f"<userInfo><organizationId>{org}</organizationId><userId>{user_id}</userId>"
        f"<sessionSecondsValid>{ctx.state.limits['salesforce']['session_ttl_seconds']}</sessionSecondsValid>"
        "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
    return Resp(200, raw=xml.encode(), content_type=b"text/xml;charset=UTF-8")


def versions(ctx: Ctx) -> Resp:
    out = []
    for major in range(55, 63):
        v = f"{major}.0"
        out.append({"label": f"v{v}", "url": f"/services/data/v{v}", "version": v})
    return Resp(200, out)


# --- helpers --------------------------------------------------------------------------------


def parse_json(ctx: Ctx) -> Any:
    try:
        return json.loads(ctx.body.decode("utf-8") if ctx.body else "")
    except UnicodeDecodeError as exc:
        raise sf_error(400, "JSON_PARSER_ERROR", f"Invalid UTF-8 in request body: {exc}") from exc
    except json.JSONDecodeError as exc:
        near = ctx.body[exc.pos : exc.pos + 1].decode("utf-8", "replace") or "EOF"
        raise sf_error(
            400, "JSON_PARSER_ERROR",
            f"Unexpected character ('{near}' (code {ord(near[0]) if near != 'EOF' else -1})): {exc.msg}\n"
            f" at [line:{exc.lineno}, column:{exc.colno}]",
        ) from exc


def _sobject(ctx: Ctx, name: str) -> Any:
    obj = ctx.state.sf.sobject(name)
    if obj is None:
        raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
    return obj


def _as_request_error(err: dict[str, Any]) -> RequestError:
    return sf_error(400, err["statusCode"], err["message"], err["fields"])


def auto_assign(ctx: Ctx) -> bool:
    """``Sforce-Auto-Assign``: absent means TRUE, exactly as Salesforce defaults it."""
    value = ctx.headers.get("sforce-auto-assign")
    if value is None:
        return True
    return value.strip().lower() not in ("false", "0")


def _lock_error(ctx: Ctx, record_id: str) -> dict[str, Any] | None:
    faults = ctx.state.faults
    locked = record_id in faults.lock_row_ids
    if not locked and faults.scripted:
        locked = faults.take_lock("salesforce", ctx.endpoint, record_id)
    if not locked and faults.applies("salesforce", ctx.endpoint):
        locked = faults.roll(faults.lock_row_rate)
    if locked:
        return record_error("UNABLE_TO_LOCK_ROW",
                            f"unable to obtain exclusive access to this record or 1 records: {record_id}", [])
    return None


def _api_version(ctx: Ctx) -> str:
    return ctx.params.get("ver") or ctx.state.sf_api_version


# --- query ----------------------------------------------------------------------------------


def _render_row(cq: CompiledQuery, rec: dict[str, Any], ver: str, catalog: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": cq.sobject, "url": f"/services/data/v{ver}/sobjects/{cq.sobject}/"
                                                                      f"{rec['Id']}"}}
    for col in cq.columns:
        if len(col.path) == 1:
            out[col.path[0]] = format_value(col.fields[0], rec.get(col.path[0]))
            continue
        node, current = out, rec
        for rel, hop in zip(col.path[:-1], col.fields[:-1], strict=True):
            if rel in node and node[rel] is None:
                break
            ref_id = current.get(hop.name) if current is not None else None
            found = catalog.lookup(ref_id) if ref_id else None
            if found is None:
                node[rel] = None
                break
            ttype, current = found
            if rel not in node:
                node[rel] = {"attributes": {"type": ttype, "url": f"/services/data/v{ver}/sobjects/{ttype}/"
                                                                  f"{current['Id']}"}}
            node = node[rel]
        else:
            leaf = col.fields[-1]
            tobj = catalog.schema.get(node["attributes"]["type"])
            f = tobj.field_named(leaf.name) if tobj else None
            node[col.path[-1]] = format_value(f, current.get(f.name)) if f is not None else None
    return out


def _batch_size(ctx: Ctx) -> int:
    default = ctx.state.limits["salesforce"]["query_batch_size"]
    opts = ctx.headers.get("sforce-query-options", "")
    m = re.search(r"batchSize\s*=\s*(\d+)", opts)
    if m:
        return max(200, min(int(m.group(1)), 2000))
    return max(1, default)


def _page(ctx: Ctx, cursor: dict[str, Any], locator: str, start: int) -> Resp:
    rows = cursor["rows"]
    batch = cursor["batch"]
    chunk = rows[start : start + batch]
    ver = _api_version(ctx)
    records = [_render_row(cursor["query"], r, ver, ctx.state.sf) for r in chunk]
    end = start + len(chunk)
    body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": records}
    if end < len(rows):
        endpoint = "queryAll" if cursor["all"] else "query"
        body["nextRecordsUrl"] = f"/services/data/v{ver}/{endpoint}/{locator}-{end}"
    return Resp(200, body)


def query(ctx: Ctx, include_deleted: bool = False) -> Resp:
    q = ctx.q("q")
    if q is None or not q.strip():
        return Resp(400, [{"message": "A query string has to be specified", "errorCode": "MALFORMED_QUERY"}])
    sf = ctx.state.sf
    try:
        cq = compile_query(q, sf)
    except SoqlError as exc:
        return Resp(400, [{"message": exc.render(q), "errorCode": exc.code}])
    if cq.id_filter is not None:
        found = (sf.by_id.get(i) for i in cq.id_filter)
        candidates = [f[1] for f in found if f is not None and f[0] == cq.sobject
                      and (include_deleted or not f[1].get("IsDeleted"))]
    else:
        candidates = sf.live(cq.sobject, include_deleted)
    rows = [r for r in candidates if cq.predicate(r)]
    if cq.count_only:
        return Resp(200, {"totalSize": len(rows), "done": True, "records": []})
    if cq.aggregate:
        getter = cq.columns[0].getter
        n = sum(1 for r in rows if getter(r) is not None)
        return Resp(200, {"totalSize": 1, "done": True,
                          "records": [{"attributes": {"type": "AggregateResult"}, "expr0": n}]})
    if cq.order:
        rows = sort_records(rows, cq.order)
    if cq.offset:
        rows = rows[cq.offset :]
    if cq.limit is not None:
        rows = rows[: cq.limit]
    cursor = {"rows": rows, "batch": _batch_size(ctx), "query": cq, "all": include_deleted}
    locator = "01g5e" + secrets.token_hex(5).upper()[:10] + "IAW"
    cursors = ctx.state.query_cursors
    if len(rows) > cursor["batch"]:
        cursors[locator] = cursor
        while len(cursors) > MAX_CURSORS:
            cursors.pop(next(iter(cursors)))
    return _page(ctx, cursor, locator, 0)


def query_all(ctx: Ctx) -> Resp:
    return query(ctx, include_deleted=True)


def query_more(ctx: Ctx) -> Resp:
    locator, _, start = ctx.params["locator"].rpartition("-")
    cursor = ctx.state.query_cursors.get(locator)
    if cursor is None or not start.isdigit():
        return Resp(400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    return _page(ctx, cursor, locator, int(start))


# --- limits and describe --------------------------------------------------------------------


def limits(ctx: Ctx) -> Resp:
    state = ctx.state
    mx = state.limits["salesforce"]["daily_api_requests"]
    return Resp(200, {
        "DailyApiRequests": {"Max": mx, "Remaining": max(0, mx - state.sf_api_used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "SingleEmail": {"Max": 5000, "Remaining": 5000},
    })


def _sobject_summary(name: str, ver: str) -> dict[str, Any]:
    return {
        "name": name, "label": name, "keyPrefix": KEY_PREFIXES.get(name), "custom": False,
        "createable": True, "updateable": True, "deletable": True, "queryable": True, "retrieveable": True,
        "urls": {"sobject": f"/services/data/v{ver}/sobjects/{name}",
                 "describe": f"/services/data/v{ver}/sobjects/{name}/describe",
                 "rowTemplate": f"/services/data/v{ver}/sobjects/{name}/{{ID}}"},
    }


def describe_global(ctx: Ctx) -> Resp:
    ver = _api_version(ctx)
    return Resp(200, {"encoding": "UTF-8", "maxBatchSize": ctx.state.limits["salesforce"]["collection_max"],
                      "sobjects": [_sobject_summary(n, ver) for n in ctx.state.sf.schema]})


def sobject_info(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    return Resp(200, {"objectDescribe": _sobject_summary(obj.name, _api_version(ctx)), "recentItems": []})


def describe(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    body = _sobject_summary(obj.name, _api_version(ctx))
    body["fields"] = [f.describe() for f in obj.fields.values()]
    return Resp(200, body)


# --- single records -------------------------------------------------------------------------


def _find(ctx: Ctx, obj: Any, record_id: str) -> dict[str, Any]:
    found = ctx.state.sf.by_id.get(to_sf18(record_id))
    if found is None or found[0] != obj.name or found[1].get("IsDeleted"):
        if not is_sf_id(record_id):
            raise sf_error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                                             f"{record_id}")
        raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
    return found[1]


def get_record(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    rec = _find(ctx, obj, ctx.params["id"])
    names = None
    wanted = ctx.q_list("fields")
    if wanted:
        names = []
        for w in wanted:
            f = obj.field_named(w.strip())
            if f is None:
                raise sf_error(400, "INVALID_FIELD", f"No such column '{w}' on entity '{obj.name}'. If you are "
                               "attempting to use a custom field, be sure to append the '__c' after the custom "
                               "field name. Please reference your WSDL or the describe call for the appropriate "
                               "names.")
            names.append(f.name)
        if "Id" not in names:
            names.append("Id")
    return Resp(200, ctx.state.sf.render(obj.name, rec, _api_version(ctx), names))


def _actor(ctx: Ctx) -> str | None:
    return ctx.session.user_id if ctx.session else ctx.state.sf.integration_user_id


def create_record(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    payload = parse_json(ctx)
    if not isinstance(payload, dict):
        raise sf_error(400, "JSON_PARSER_ERROR", "Can not deserialize SObject out of START_ARRAY token at "
                                                 "[line:1, column:1]")
    values, read_only = ctx.state.sf.parse_payload(obj, payload)
    if "Id" in values:
        raise sf_error(400, "INVALID_FIELD", "Unable to create/update fields: Id. Please check the security settings "
                       "of this field and verify that it is read/write for your profile or permission set.", ["Id"])
    err = ctx.state.sf.check_values(obj, values, read_only, creating=True)
    if err:
        raise _as_request_error(err)
    rec = ctx.state.sf.apply(obj, None, values, actor=_actor(ctx), auto_assign=auto_assign(ctx))
    return Resp(201, {"id": rec["Id"], "success": True, "errors": []})


def update_record(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    rec = _find(ctx, obj, ctx.params["id"])
    payload = parse_json(ctx)
    if not isinstance(payload, dict):
        raise sf_error(400, "JSON_PARSER_ERROR", "Can not deserialize SObject out of START_ARRAY token at "
                                                 "[line:1, column:1]")
    values, read_only = ctx.state.sf.parse_payload(obj, payload)
    values.pop("Id", None)
    err = ctx.state.sf.check_values(obj, values, read_only, creating=False, existing=rec) or \
        _lock_error(ctx, rec["Id"])
    if err:
        raise _as_request_error(err)
    ctx.state.sf.apply(obj, rec, values, actor=_actor(ctx), auto_assign=auto_assign(ctx))
    return Resp(204)


def delete_record(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    rec = _find(ctx, obj, ctx.params["id"])
    err = _lock_error(ctx, rec["Id"])
    if err:
        raise _as_request_error(err)
    ctx.state.sf.delete(rec, _actor(ctx))
    return Resp(204)


# --- sObject Collections --------------------------------------------------------------------


def _collection_body(ctx: Ctx) -> tuple[bool, list[Any]]:
    body = parse_json(ctx)
    if not isinstance(body, dict):
        raise sf_error(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of CollectionRequest out of "
                                                 "START_ARRAY token at [line:1, column:1]")
    unknown = set(body) - {"allOrNone", "records"}
    if unknown:
        raise sf_error(400, "JSON_PARSER_ERROR", f"Unrecognized field \"{sorted(unknown)[0]}\" at [line:1, column:1]")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise sf_error(400, "JSON_PARSER_ERROR", "Cannot deserialize value of type boolean for allOrNone")
    records = body.get("records")
    if not isinstance(records, list):
        raise sf_error(400, "INVALID_FIELD", "Required field 'records' is missing or is not a list")
    cap = ctx.state.limits["salesforce"]["collection_max"]
    if len(records) > cap:
        raise sf_error(400, "EXCEEDED_ID_LIMIT",
                       f"record limit reached. cannot submit more than {cap} records into this call")
    return all_or_none, records


def _record_type(ctx: Ctx, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise sf_error(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    attrs = raw.get("attributes")
    type_name = attrs.get("type") if isinstance(attrs, dict) else None
    if not type_name:
        raise sf_error(400, "INVALID_TYPE", "Must send a concrete entity type: each record needs attributes.type")
    obj = ctx.state.sf.sobject(str(type_name))
    if obj is None:
        raise sf_error(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
    return obj


def _finish_collection(ctx: Ctx, all_or_none: bool, planned: list[tuple[Any, Any, dict[str, Any] | None, Any]],
                       creating: bool) -> Resp:
    """Apply the planned writes (or none of them) and build the SaveResult list."""
    failed = any(err for _, _, err, _ in planned)
    results: list[dict[str, Any]] = []
    assign = auto_assign(ctx)
    actor = _actor(ctx)
    for obj, values, err, rec in planned:
        if err:
            results.append({"success": False, "errors": [err]})
        elif all_or_none and failed:
            rolled: dict[str, Any] = {"success": False, "errors": [record_error(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )]}
            if rec is not None:
                rolled = {"id": rec["Id"], **rolled}
            results.append(rolled)
        else:
            saved = ctx.state.sf.apply(obj, None if creating else rec, values, actor=actor, auto_assign=assign)
            results.append({"id": saved["Id"], "success": True, "errors": []})
    return Resp(200, results)


def collection_update(ctx: Ctx) -> Resp:
    all_or_none, records = _collection_body(ctx)
    sf = ctx.state.sf
    parsed = []
    for raw in records:  # whole-request failures first, as Salesforce deserializes everything up front
        obj = _record_type(ctx, raw)
        values, read_only = sf.parse_payload(obj, raw)
        parsed.append((obj, values, read_only))
    planned = []
    for obj, values, read_only in parsed:
        rid = values.pop("Id", None)
        rec = None
        err: dict[str, Any] | None
        found = sf.by_id.get(to_sf18(rid)) if isinstance(rid, str) else None
        if rid in (None, ""):
            err = record_error("MISSING_ARGUMENT", "Id not specified in an update call", [])
        elif (found is None and (not isinstance(rid, str) or not is_sf_id(rid) or sf_type_of(to_sf18(rid)) != obj.name)) \
                or (found is not None and found[0] != obj.name):
            err = record_error("MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {rid}", ["Id"])
        else:
            if found is None:
                err = record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            elif found[1].get("IsDeleted"):
                err = record_error("ENTITY_IS_DELETED", "entity is deleted", [])
            else:
                rec = found[1]
                err = sf.check_values(obj, values, read_only, creating=False, existing=rec) or \
                    _lock_error(ctx, rec["Id"])
        planned.append((obj, values, err, rec))
    return _finish_collection(ctx, all_or_none, planned, creating=False)


def collection_create(ctx: Ctx) -> Resp:
    all_or_none, records = _collection_body(ctx)
    sf = ctx.state.sf
    parsed = []
    for raw in records:
        obj = _record_type(ctx, raw)
        values, read_only = sf.parse_payload(obj, raw)
        parsed.append((obj, values, read_only))
    planned = []
    for obj, values, read_only in parsed:
        if values.pop("Id", None):
            err: dict[str, Any] | None = record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        else:
            err = sf.check_values(obj, values, read_only, creating=True)
        planned.append((obj, values, err, None))
    return _finish_collection(ctx, all_or_none, planned, creating=True)


def collection_retrieve(ctx: Ctx) -> Resp:
    obj = _sobject(ctx, ctx.params["type"])
    ids = ctx.q_list("ids")
    fields = ctx.q_list("fields")
    if not ids or not fields:
        raise sf_error(400, "MISSING_ARGUMENT", "ids and fields are required query parameters")
    if len(ids) > 2000:
        raise sf_error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 2000 records into "
                       "this call")
    names = []
    for w in fields:
        f = obj.field_named(w)
        if f is None:
            raise sf_error(400, "INVALID_FIELD", f"No such column '{w}' on entity '{obj.name}'.")
        names.append(f.name)
    out: list[Any] = []
    for rid in ids:
        found = ctx.state.sf.by_id.get(to_sf18(rid))
        if found is None or found[0] != obj.name or found[1].get("IsDeleted"):
            out.append(None)
        else:
            out.append(ctx.state.sf.render(obj.name, found[1], _api_version(ctx), names))
    return Resp(200, out)


def _type_name(p: dict[str, str]) -> str:
    return p.get("type", "")


ROUTES: list[tuple[str, str, str, Any, Any]] = [
    ("POST", r"(?:/[^/]*\.salesforce\.com)?/services/oauth2/token", "oauth", "POST /services/oauth2/token",
     token_endpoint),
    ("POST", r"(?:/[^/]*\.salesforce\.com)?/services/Soap/u/(?P<ver>\d{2,3}\.\d)(?:/.*)?", "oauth",
     "POST /services/Soap/u/{version}", soap_login),
    ("GET", r"/services/data", "salesforce", "GET /services/data", versions),
    ("GET", V + r"/limits", "salesforce", "GET /limits", limits),
    ("GET", V + r"/query", "salesforce", "GET /query", query),
    ("GET", V + r"/query/(?P<locator>[^/]+)", "salesforce", "GET /query/{locator}", query_more),
    ("GET", V + r"/queryAll", "salesforce", "GET /queryAll", query_all),
    ("GET", V + r"/queryAll/(?P<locator>[^/]+)", "salesforce", "GET /queryAll/{locator}", query_more),
    ("GET", V + r"/sobjects", "salesforce", "GET /sobjects", describe_global),
    ("GET", V + r"/sobjects/(?P<type>\w+)", "salesforce", lambda p: f"GET /sobjects/{_type_name(p)}", sobject_info),
    ("GET", V + r"/sobjects/(?P<type>\w+)/describe", "salesforce",
     lambda p: f"GET /sobjects/{_type_name(p)}/describe", describe),
    ("POST", V + r"/sobjects/(?P<type>\w+)", "salesforce", lambda p: f"POST /sobjects/{_type_name(p)}",
     create_record),
    ("GET", V + r"/sobjects/(?P<type>\w+)/(?P<id>[^/]+)", "salesforce",
     lambda p: f"GET /sobjects/{_type_name(p)}/{{id}}", get_record),
    ("PATCH", V + r"/sobjects/(?P<type>\w+)/(?P<id>[^/]+)", "salesforce",
     lambda p: f"PATCH /sobjects/{_type_name(p)}/{{id}}", update_record),
    ("DELETE", V + r"/sobjects/(?P<type>\w+)/(?P<id>[^/]+)", "salesforce",
     lambda p: f"DELETE /sobjects/{_type_name(p)}/{{id}}", delete_record),
    ("PATCH", V + r"/composite/sobjects", "salesforce", "PATCH /composite/sobjects", collection_update),
    ("POST", V + r"/composite/sobjects", "salesforce", "POST /composite/sobjects", collection_create),
    ("GET", V + r"/composite/sobjects/(?P<type>\w+)", "salesforce",
     lambda p: f"GET /composite/sobjects/{_type_name(p)}", collection_retrieve),
]
