"""In-memory state of the sandbox CRM: one Salesforce org and one HubSpot portal.

Writes are validated the way each CRM validates them (types, read-only fields, required fields,
restricted picklists, owner references, unknown properties) and every write advances the
record's modification stamps, so connectors see realistic watermarks and realistic refusals.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .clock import advance, hs_datetime, now_ms, parse_date, parse_datetime_ms, sf_datetime
from .faults import Faults, RollingWindow, merge_limits
from .ids import SfIdFactory, is_sf_id, sf_type_of, to_sf18
from .schema import (
    HS_DEAL_STAGE_BY_ID,
    HS_DEFAULT_PROPERTIES,
    HS_MODIFIED_PROPERTY,
    NUMBER_TYPES,
    STAGE_BY_NAME,
    STRING_TYPES,
    HsProperty,
    SfField,
    SfObject,
    currency_field,
    custom_sf_field,
    standard_hs_properties,
    standard_sobjects,
)


def load_seed(path: Path | None = None) -> dict[str, Any]:
    """Read a seed file, or the default seed shipped with the package."""
    if path is None:
        text = resources.files("sandbox").joinpath("seed.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("seed must be a JSON object")
    return data


class RequestError(Exception):
    """A whole-request failure: HTTP status plus the API-native body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> RequestError:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return RequestError(status, [item])


def record_error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """A per-record error as sObject Collections report it (``statusCode``, not ``errorCode``)."""
    return {"statusCode": code, "message": message, "fields": fields or []}


# --- Salesforce -----------------------------------------------------------------------------


@dataclass
class SfSession:
    token: str
    user_id: str
    issued_ms: int
    expires_ms: int


class SalesforceStore:
    """Records of one org, keyed by type then 18-character id, plus an id index."""

    def __init__(self, seed: dict[str, Any]) -> None:
        self.org_id = to_sf18(str(seed.get("org_id", "00D5e000000SbxLRAS")))
        self.schema: dict[str, SfObject] = standard_sobjects()
        self._lower = {k.lower(): k for k in self.schema}
        # the corporate currency; a multi-currency org also has CurrencyIsoCode on its currency-bearing objects
        self.currency = str(seed.get("currency", "USD"))
        self.multi_currency = bool(seed.get("multi_currency", False))
        if self.multi_currency:
            currencies = tuple(dict.fromkeys([self.currency, *(str(c) for c in seed.get("currencies") or ())]))
            for sobject in ("Lead", "Account", "Opportunity"):
                self.schema[sobject].add(currency_field(currencies))
        for sobject, fields in (seed.get("custom_fields") or {}).items():
            obj = self.sobject(sobject)
            if obj is None:
                raise ValueError(f"seed custom_fields: unknown sObject {sobject!r}")
            for name, spec in fields.items():
                if not name.endswith("__c"):
                    raise ValueError(f"seed custom field {sobject}.{name} must end in __c")
                obj.add(custom_sf_field(name, spec))
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self.by_id: dict[str, tuple[str, dict[str, Any]]] = {}
        self.ids = SfIdFactory()
        self.version = 0
        self.integration_user_id = to_sf18(str(seed.get("integration_user_id", "")))
        self.assignment_rules: dict[str, list[dict[str, Any]]] = {}
        for sobject, rules in (seed.get("assignment_rules") or {}).items():
            if self.sobject(sobject) is None:
                raise ValueError(f"seed assignment_rules: unknown sObject {sobject!r}")
            self.assignment_rules[self.sobject(sobject).name] = list(rules)  # type: ignore[union-attr]
        records = seed.get("records") or {}
        self.insert_raw("Organization", {"Id": self.org_id, "Name": str(seed.get("org_name", "leadroute sandbox")),
                                         "DefaultCurrencyIsoCode": self.currency, "IsSandbox": True,
                                         "OrganizationType": "Enterprise Edition"})
        # Users and groups first so that owner references in other records resolve.
        order = sorted(records, key=lambda t: (t not in ("User", "Group"), t != "Account", t))
        for sobject in order:
            for raw in records[sobject]:
                self.insert_raw(sobject, raw)

    # catalog protocol for the SOQL evaluator
    def sobject(self, name: str) -> SfObject | None:
        canonical = self._lower.get(name.lower())
        return self.schema[canonical] if canonical else None

    def lookup(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        return self.by_id.get(record_id)

    # writes that bypass API validation (seeding, generated data, admin bulk load)
    def insert_raw(self, sobject: str, raw: dict[str, Any], *, stamp: int | None = None) -> dict[str, Any]:
        obj = self.sobject(sobject)
        if obj is None:
            raise ValueError(f"unknown sObject {sobject!r}")
        rec: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "attributes":
                continue
            f = obj.field_named(key)
            if f is None:
                raise ValueError(f"{obj.name}: no such field {key!r}")
            rec[f.name] = coerce_sf_value(f, value)
        ts = stamp if stamp is not None else now_ms()
        rec["Id"] = to_sf18(rec["Id"]) if rec.get("Id") else self.ids.new(obj.name)
        if rec["Id"] in self.by_id:
            raise ValueError(f"duplicate id {rec['Id']}")
        for audit in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            rec.setdefault(audit, ts)
        rec.setdefault("IsDeleted", False)
        for ref in ("CreatedById", "LastModifiedById"):
            rec.setdefault(ref, self.integration_user_id or None)
        self._defaults(obj, rec)
        self._derive(obj, rec)
        self.records[obj.name][rec["Id"]] = rec
        self.by_id[rec["Id"]] = (obj.name, rec)
        self.version += 1
        return rec

    def _defaults(self, obj: SfObject, rec: dict[str, Any]) -> None:
        if obj.name == "Lead":
            rec.setdefault("Status", "Open - Not Contacted")
            rec.setdefault("IsConverted", False)
        if obj.name == "User":
            rec.setdefault("IsActive", True)
        if obj.name == "Group":
            rec.setdefault("Type", "Queue")
        if obj.name == "Task":
            rec.setdefault("Status", "Not Started")
            rec.setdefault("Priority", "Normal")
        if obj.name == "Opportunity":
            stage = STAGE_BY_NAME.get(str(rec.get("StageName") or "").lower())
            rec.setdefault("Probability", float(stage.probability) if stage else None)
        if "OwnerId" in obj.fields:
            rec.setdefault("OwnerId", self.integration_user_id or None)
        if "CurrencyIsoCode" in obj.fields:
            rec.setdefault("CurrencyIsoCode", self.currency)

    def _derive(self, obj: SfObject, rec: dict[str, Any]) -> None:
        if "Name" in obj.fields and not obj.fields["Name"].updateable and obj.name in ("Lead", "Contact", "User"):
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        if obj.name == "Task":
            rec["IsClosed"] = rec.get("Status") == "Completed"
        if obj.name == "Opportunity":  # IsClosed and IsWon follow the stage (the OpportunityStage's flags)
            stage = STAGE_BY_NAME.get(str(rec.get("StageName") or "").lower())
            rec["IsClosed"] = bool(stage and stage.closed)
            rec["IsWon"] = bool(stage and stage.won)

    # API-style validation -------------------------------------------------------------------
    def parse_payload(self, obj: SfObject, payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Deserialize a JSON body against the schema.

        Unknown fields and values of the wrong JSON type fail the whole request (Salesforce fails
        them while deserializing); read-only fields are returned separately because Salesforce
        reports those per record.
        """
        values: dict[str, Any] = {}
        read_only: list[str] = []
        for key, value in payload.items():
            if key == "attributes":
                continue
            f = obj.field_named(key)
            if f is None:
                raise sf_error(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [])
            if f.name == "Id":
                values["Id"] = value
                continue
            try:
                values[f.name] = coerce_sf_value(f, value)
            except ValueError as exc:
                raise sf_error(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of {f.type} from {_json_kind(value)} value {value} or request "
                    f"may be missing a required field at [line:1, column:1] ({exc})",
                ) from exc
            if not (f.createable or f.updateable):
                read_only.append(f.name)
        return values, read_only

    def check_values(self, obj: SfObject, values: dict[str, Any], read_only: list[str], *, creating: bool,
                     existing: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Per-record validation; returns a collection-style error or None."""
        if read_only:
            return record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        blocked = [k for k in values if k != "Id" and not (obj.fields[k].createable if creating
                                                            else obj.fields[k].updateable)]
        if blocked:
            return record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(blocked)}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission set.",
                blocked,
            )
        merged = dict(existing or {})
        merged.update(values)
        missing = [r for r in obj.required if merged.get(r) in (None, "")]
        if missing:
            return record_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                missing)
        for name, value in values.items():
            if name == "Id" or value is None:
                continue
            f = obj.fields[name]
            if f.type in STRING_TYPES and isinstance(value, str) and f.type not in ("id", "reference") \
                    and len(value) > f.length:
                return record_error("STRING_TOO_LONG",
                                    f"{_label(f)}: data value too large: {value[:40]} (max length={f.length})",
                                    [name])
            if f.type == "picklist" and f.restricted and value not in f.picklist:
                return record_error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                    f"{_label(f)}: bad value for restricted picklist field: {value}", [name])
            if f.type == "email" and ("@" not in value or " " in value):
                return record_error("INVALID_EMAIL_ADDRESS", f"{_label(f)}: invalid email address: {value}", [name])
            if f.type == "reference":
                err = self._check_reference(obj, f, value)
                if err:
                    return err
        return None

    def _check_reference(self, obj: SfObject, f: SfField, value: str) -> dict[str, Any] | None:
        target = self.by_id.get(value)
        if target is None:
            if not is_sf_id(value) or sf_type_of(value) not in f.reference_to:
                return record_error("MALFORMED_ID", f"{_label(f)}: id value of incorrect type: {value}", [f.name])
            return record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        if target[0] not in f.reference_to:
            return record_error("MALFORMED_ID", f"{_label(f)}: id value of incorrect type: {value}", [f.name])
        if target[1].get("IsDeleted"):
            return record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        ttype, trec = target
        if f.name == "OwnerId":
            if ttype == "User" and not trec.get("IsActive", True):
                return record_error("INACTIVE_OWNER_OR_USER",
                                    f"operation performed with inactive user [{value}] as owner of "
                                    f"{obj.name.lower()}", [])
            if ttype == "Group" and trec.get("Type") != "Queue":
                return record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        return None

    def apply(self, obj: SfObject, rec: dict[str, Any] | None, values: dict[str, Any], *, actor: str | None,
              auto_assign: bool) -> dict[str, Any]:
        """Create (rec is None) or update a record; stamps and assignment rules applied."""
        ts = advance(rec.get("SystemModstamp") if rec is not None else None)
        creating = rec is None
        if rec is None:
            rec = {"Id": self.ids.new(obj.name), "IsDeleted": False, "CreatedDate": ts,
                   "CreatedById": actor}
            if "OwnerId" in obj.fields:
                rec["OwnerId"] = actor
        for key, value in values.items():
            if key != "Id":
                rec[key] = value
        if obj.name == "Opportunity" and "StageName" in values and "Probability" not in values:
            stage = STAGE_BY_NAME.get(str(values["StageName"] or "").lower())
            rec["Probability"] = float(stage.probability) if stage else None  # a new stage brings its probability
        if creating:
            self._defaults(obj, rec)
        if auto_assign:
            owner = self.assignment_owner(obj.name, rec)
            if owner:
                rec["OwnerId"] = owner
        rec["LastModifiedDate"] = ts
        rec["SystemModstamp"] = ts
        rec["LastModifiedById"] = actor
        self._derive(obj, rec)
        if creating:
            self.records[obj.name][rec["Id"]] = rec
            self.by_id[rec["Id"]] = (obj.name, rec)
        self.version += 1
        return rec

    def assignment_owner(self, sobject: str, rec: dict[str, Any]) -> str | None:
        """The 'native assignment rule': first entry whose conditions match wins."""
        for rule in self.assignment_rules.get(sobject, []):
            conditions = rule.get("when") or {}
            ok = True
            for fname, wanted in conditions.items():
                wanted_list = wanted if isinstance(wanted, list) else [wanted]
                have = rec.get(fname)
                if have is None or str(have).lower() not in {str(w).lower() for w in wanted_list}:
                    ok = False
                    break
            if ok:
                return to_sf18(str(rule["owner_id"]))
        return None

    def touch(self, rec: dict[str, Any], actor: str | None, *, modstamp_only: bool = False) -> None:
        ts = advance(rec.get("SystemModstamp"))
        rec["SystemModstamp"] = ts
        if not modstamp_only:
            rec["LastModifiedDate"] = ts
            rec["LastModifiedById"] = actor
        self.version += 1

    def delete(self, rec: dict[str, Any], actor: str | None) -> None:
        rec["IsDeleted"] = True
        self.touch(rec, actor)

    def live(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        rows = self.records[sobject].values()
        if include_deleted:
            return list(rows)
        return [r for r in rows if not r.get("IsDeleted")]

    def render(self, sobject: str, rec: dict[str, Any], api_version: str, fields: list[str] | None = None) -> dict[str, Any]:
        obj = self.schema[sobject]
        out: dict[str, Any] = {"attributes": {"type": sobject,
                                              "url": f"/services/data/v{api_version}/sobjects/{sobject}/{rec['Id']}"}}
        names = fields if fields is not None else list(obj.fields)
        for name in names:
            f = obj.fields[name]
            value = rec.get(name)
            out[name] = sf_datetime(value) if (f.type == "datetime" and value is not None) else value
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sobject, rows in self.records.items():
            out[sobject] = [self.render(sobject, r, "60.0")
                            for r in rows.values()]
        return out


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "VALUE_NULL"


def _label(f: SfField) -> str:
    if f.name.endswith("Id") and f.type == "reference":
        return f.name[:-2] + " ID"
    return f.name.replace("__c", "").replace("_", " ")


def coerce_sf_value(f: SfField, value: Any) -> Any:
    """JSON value -> stored value for a field; ValueError when Salesforce could not deserialize it."""
    if value is None:
        return None
    t = f.type
    if t in ("id", "reference"):
        if not isinstance(value, str):
            raise ValueError("expected an id string")
        return to_sf18(value)
    if t in STRING_TYPES:
        if isinstance(value, bool | list | dict):
            raise ValueError("expected a string")
        return str(value)
    if t in NUMBER_TYPES:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError("expected a number") from None
        if not isinstance(value, int | float):
            raise ValueError("expected a number")
        if t == "int":
            if float(value) != int(value):
                raise ValueError("expected an integer")
            return int(value)
        return float(value)
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("expected a boolean")
    if t == "date":
        if not isinstance(value, str) or parse_date(value[:10]) is None:
            raise ValueError("expected a date yyyy-MM-dd")
        return value[:10]
    if t == "datetime":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        ms = parse_datetime_ms(value) if isinstance(value, str) else None
        if ms is None:
            raise ValueError("expected a dateTime such as 2024-01-31T10:00:00.000+0000")
        return ms
    raise ValueError(f"unsupported type {t}")


# --- HubSpot --------------------------------------------------------------------------------


class HubSpotStore:
    """Objects of one portal keyed by type then numeric-string id, plus owners."""

    def __init__(self, seed: dict[str, Any]) -> None:
        self.portal_id = int(seed.get("portal_id", 24_681_357))
        self.props = standard_hs_properties()
        for otype, props in (seed.get("custom_properties") or {}).items():
            if otype not in self.props:
                raise ValueError(f"seed custom_properties: unknown object type {otype!r}")
            for name, spec in props.items():
                spec = {"type": spec} if isinstance(spec, str) else spec
                self.props[otype][name] = HsProperty(name, str(spec.get("type", "string")),
                                                     options=tuple(spec.get("options", ())))
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.props}
        self._next = {"contacts": itertools.count(1001), "companies": itertools.count(9_000_001),
                      "notes": itertools.count(40_000_001), "deals": itertools.count(18_000_001)}
        self.owners: dict[str, dict[str, Any]] = {}
        self.version = 0
        ts = now_ms()
        for raw in seed.get("owners") or []:
            owner = {
                "id": str(raw["id"]), "email": raw.get("email"), "firstName": raw.get("firstName", ""),
                "lastName": raw.get("lastName", ""), "userId": raw.get("userId"),
                "userIdIncludingInactive": raw.get("userId"), "type": raw.get("type", "PERSON"),
                "archived": bool(raw.get("archived", False)), "teams": raw.get("teams", []),
                "createdAt": hs_datetime(ts), "updatedAt": hs_datetime(ts),
            }
            if owner["type"] not in ("PERSON", "QUEUE"):
                raise ValueError(f"owner {owner['id']}: type must be PERSON or QUEUE")
            self.owners[owner["id"]] = owner
        for otype, rows in (seed.get("objects") or {}).items():
            if otype not in self.objects:
                raise ValueError(f"seed objects: unknown HubSpot object type {otype!r}")
            for raw in rows:
                self.insert_raw(otype, raw)

    def new_id(self, otype: str) -> str:
        while True:
            candidate = str(next(self._next[otype]))
            if candidate not in self.objects[otype]:
                return candidate

    def insert_raw(self, otype: str, raw: dict[str, Any], *, stamp: int | None = None) -> dict[str, Any]:
        props = dict(raw.get("properties", raw))
        props.pop("id", None)
        rid = str(raw.get("id") or self.new_id(otype))
        if rid in self.objects[otype]:
            raise ValueError(f"duplicate {otype} id {rid}")
        ts = stamp if stamp is not None else now_ms()
        created = _ms_or(raw.get("createdAt") or props.pop("createdate", None), ts)
        updated = _ms_or(raw.get("updatedAt") or props.pop(HS_MODIFIED_PROPERTY[otype], None), ts)
        known = self.props[otype]
        clean: dict[str, str | None] = {}
        for k, v in props.items():
            if k not in known:
                raise ValueError(f"{otype} {rid}: unknown property {k!r}")
            clean[k] = None if v is None else str(v)
        rec = {"id": rid, "properties": clean, "createdAt": created, "updatedAt": updated,
               "archived": bool(raw.get("archived", False)), "archivedAt": None,
               "associations": {k: list(map(str, v)) for k, v in (raw.get("associations") or {}).items()}}
        self._derive(otype, rec, clean, updated, creating=True)
        self.objects[otype][rid] = rec
        self.version += 1
        return rec

    def _derive(self, otype: str, rec: dict[str, Any], changed: dict[str, Any], ts: int, *, creating: bool) -> None:
        """What HubSpot calculates from what was written: a deal's closed/won flags and probability from its
        stage (and its close date, when it closes without one); a contact's "became a ... date" for each
        lifecycle stage it reaches (kept once set)."""
        props = rec["properties"]
        if otype == "deals":
            if creating and not props.get("pipeline"):
                props["pipeline"] = "default"
            if "dealstage" in changed or creating:
                stage = HS_DEAL_STAGE_BY_ID.get(props.get("dealstage") or "")
                closed, won = bool(stage and stage.closed), bool(stage and stage.won)
                props["hs_is_closed"] = "true" if closed else "false"
                props["hs_is_closed_won"] = "true" if won else "false"
                props["hs_is_closed_lost"] = "true" if closed and not won else "false"
                props["hs_deal_stage_probability"] = None if stage is None else str(stage.probability)
                if closed and not props.get("closedate"):
                    props["closedate"] = hs_datetime(ts)
        if otype == "contacts" and ("email" in changed or creating):
            email = props.get("email") or ""
            props["hs_email_domain"] = email.rpartition("@")[2].strip().lower() or None if "@" in email else None
        if otype == "contacts" and changed.get("lifecyclestage"):
            key = f"hs_lifecyclestage_{changed['lifecyclestage']}_date"
            if key in self.props["contacts"] and not props.get(key):
                props[key] = hs_datetime(ts)

    def associate(self, a_type: str, a: dict[str, Any], b_type: str, b: dict[str, Any]) -> None:
        """Associate two records (both directions, once)."""
        for one, to, other in ((a, b_type, b), (b, a_type, a)):
            linked = one["associations"].setdefault(to, [])
            if other["id"] not in linked:
                linked.append(other["id"])
        self.version += 1

    def prop_value(self, otype: str, rec: dict[str, Any], name: str) -> str | None:
        if name == "hs_object_id":
            return rec["id"]
        if name == "createdate":
            return hs_datetime(rec["createdAt"])
        if name == HS_MODIFIED_PROPERTY[otype]:
            return hs_datetime(rec["updatedAt"])
        return rec["properties"].get(name)

    def render(self, otype: str, rec: dict[str, Any], properties: list[str] | None = None) -> dict[str, Any]:
        names = properties if properties else list(HS_DEFAULT_PROPERTIES[otype])
        known = self.props[otype]
        props = {n: self.prop_value(otype, rec, n) for n in names if n in known}
        out: dict[str, Any] = {
            "id": rec["id"],
            "properties": props,
            "createdAt": hs_datetime(rec["createdAt"]),
            "updatedAt": hs_datetime(rec["updatedAt"]),
            "archived": rec["archived"],
        }
        if rec["archived"] and rec.get("archivedAt"):
            out["archivedAt"] = hs_datetime(rec["archivedAt"])
        return out

    def validate_properties(self, otype: str, props: Any) -> list[dict[str, Any]]:
        """HubSpot's per-property validation results (empty list = valid)."""
        problems: list[dict[str, Any]] = []
        known = self.props[otype]
        for name, value in props.items():
            p = known.get(name)
            if p is None:
                problems.append(_prop_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if p.read_only:
                problems.append(_prop_problem(name, "READ_ONLY_VALUE",
                                              f'"{name}" is a read only property; its value cannot be set.'))
                continue
            if value is None or value == "":
                continue
            if not isinstance(value, str | int | float) or (isinstance(value, bool) and p.type != "bool"):
                problems.append(_prop_problem(name, "INVALID_VALUE", f"{value!r} is not a valid value for {name}"))
                continue
            text = str(value)
            if name == "hubspot_owner_id":
                owner = self.owners.get(text)
                if owner is None or owner["archived"]:
                    problems.append(_prop_problem(name, "INVALID_OWNER_ID", f"{text} is not a valid owner id"))
            elif p.type == "number":
                try:
                    float(text)
                except ValueError:
                    problems.append(_prop_problem(name, "INVALID_DECIMAL", f"{text} was not a valid number."))
            elif p.type in ("datetime", "date"):
                if not (text.isdigit() or parse_datetime_ms(text) is not None or parse_date(text)):
                    problems.append(_prop_problem(name, "INVALID_DATE", f"{text} was not a valid date."))
            elif p.type == "enumeration" and p.options and text not in p.options:
                problems.append(_prop_problem(
                    name, "INVALID_OPTION",
                    f"{text} was not one of the allowed options: {', '.join(p.options)}"))
        return problems

    def apply(self, otype: str, rec: dict[str, Any] | None, props: dict[str, Any]) -> dict[str, Any]:
        ts = advance(rec["updatedAt"] if rec is not None else None)
        creating = rec is None
        if rec is None:
            rec = {"id": self.new_id(otype), "properties": {}, "createdAt": ts, "updatedAt": ts,
                   "archived": False, "archivedAt": None, "associations": {}}
            self.objects[otype][rec["id"]] = rec
        for name, value in props.items():
            text = None if value is None or value == "" else str(value)
            if name == "hubspot_owner_id" and text != rec["properties"].get(name):
                rec["properties"]["hubspot_owner_assigneddate"] = hs_datetime(ts)
            rec["properties"][name] = text
        self._derive(otype, rec, {k: rec["properties"].get(k) for k in props}, ts, creating=creating)
        rec["updatedAt"] = ts
        self.version += 1
        return rec

    def find(self, otype: str, rid: str, id_property: str | None = None,
             archived: bool = False) -> dict[str, Any] | None:
        if id_property and id_property != "hs_object_id":
            want = rid.lower()
            for rec in self.objects[otype].values():
                if rec["archived"] == archived and (rec["properties"].get(id_property) or "").lower() == want:
                    return rec
            return None
        rec = self.objects[otype].get(rid)
        if rec is None or rec["archived"] != archived:
            return None
        return rec

    def archive(self, rec: dict[str, Any]) -> None:
        ts = advance(rec["updatedAt"])
        rec["archived"] = True
        rec["archivedAt"] = ts
        rec["updatedAt"] = ts
        self.version += 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"portal_id": self.portal_id, "owners": list(self.owners.values())}
        for otype, rows in self.objects.items():
            out[otype] = []
            for rec in rows.values():
                item = self.render(otype, rec, sorted(set(self.props[otype]) | set(rec["properties"])))
                item["associations"] = rec["associations"]
                out[otype].append(item)
        return out


def _ms_or(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value)
    if text.isdigit():
        return int(text)
    ms = parse_datetime_ms(text)
    if ms is None:
        raise ValueError(f"not a datetime: {value!r}")
    return ms


def _prop_problem(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name, "localizedErrorMessage": message}


# --- the whole sandbox ----------------------------------------------------------------------


class SandboxState:
    """Everything the server holds: both CRMs, sessions, limits, faults and usage."""

    def __init__(self, seed: dict[str, Any]) -> None:
        self.seed = copy.deepcopy(seed)
        self.faults = Faults()
        self.sessions: dict[str, SfSession] = {}
        self.reset()

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        """Reload the start-up seed (or ``seed``); clears faults, usage and query cursors (sessions survive)."""
        seed = copy.deepcopy(self.seed if seed is None else seed)
        sf_seed = seed.get("salesforce") or {}
        hs_seed = seed.get("hubspot") or {}
        self.sf = SalesforceStore(sf_seed)
        self.hs = HubSpotStore(hs_seed)
        self.sf_api_version = str(sf_seed.get("api_version", "60.0"))
        creds = sf_seed.get("credentials") or {}
        self.sf_credentials = {
            "client_id": str(creds.get("client_id", "3MVG9sandboxLeadrouteClientId")),
            "client_secret": str(creds.get("client_secret", "sandbox-client-secret")),
            "username": str(creds.get("username", "integration@leadroute.sandbox")),
            "password": str(creds.get("password", "sandbox-password")),
            "security_token": str(creds.get("security_token", "SandboxSecurityToken")),
        }
        if not self.sf.integration_user_id:
            users = list(self.sf.records["User"])
            self.sf.integration_user_id = users[0] if users else ""
        self.hs_access_token = str(hs_seed.get("access_token", "pat-na1-leadroute-sandbox-token"))
        self.limits = merge_limits(seed.get("limits"))
        self.faults.reset()
        if seed.get("faults"):
            self.faults.configure(seed["faults"])
        self.sf_api_used = 0
        self.hs_daily_used = 0
        self.hs_ten_second = RollingWindow(10_000)
        self.hs_search_second = RollingWindow(1_000)
        self.query_cursors: dict[str, dict[str, Any]] = {}
        self.hs_search_cache: dict[str, tuple[int, list[dict[str, Any]]]] = {}

    def to_json(self) -> dict[str, Any]:
        return {
            "salesforce": {
                "org_id": self.sf.org_id,
                "api_version": self.sf_api_version,
                "integration_user_id": self.sf.integration_user_id,
                "assignment_rules": self.sf.assignment_rules,
                "api_usage": {"used": self.sf_api_used, "max": self.limits["salesforce"]["daily_api_requests"]},
                "active_sessions": len(self.sessions),
                "records": self.sf.to_json(),
            },
            "hubspot": {
                **self.hs.to_json(),
                "daily_used": self.hs_daily_used,
            },
            "limits": self.limits,
            "faults": self.faults.to_json(),
        }


# --- synthetic data -------------------------------------------------------------------------

_FIRST = ("Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kavya", "Liam",
          "Mei", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Yara", "Zoe")
_LAST = ("Nguyen", "Smith", "Garcia", "Müller", "Okafor", "Rossi", "Kowalski", "Tanaka", "Silva", "Johansson",
         "Patel", "Dubois", "Kim", "Novak", "Haddad", "Brown", "Lopez", "Schmidt", "Ivanova", "Murphy")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne",
              "Soylent", "Wonka", "Aperture", "Massive Dynamic", "Oscorp", "Pied Piper", "Dunder Mifflin",
              "Gringotts", "Monarch", "Nakatomi")
_SUFFIX = ("Inc", "GmbH", "Ltd", "SA", "BV", "AB", "Corp", "KK")
_COUNTRIES = (("US", "CA"), ("US", "NY"), ("US", "TX"), ("Germany", None), ("DE", None), ("France", None),
              ("United Kingdom", None), ("Japan", None), ("Brazil", None), ("Canada", "ON"), ("India", None),
              ("Australia", "NSW"), ("Spain", None), ("Netherlands", None))
_INDUSTRIES = ("Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Media")
_FREEMAIL = ("gmail.com", "yahoo.com", "outlook.com")


def synthetic_people(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic realistic-looking leads, shared by both CRMs' generators."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company = f"{rng.choice(_COMPANIES)} {rng.choice(_SUFFIX)}"
        domain = company.split()[0].lower() + f"{i % 97}.example"
        email_domain = rng.choice(_FREEMAIL) if rng.random() < 0.1 else domain
        country, state = rng.choice(_COUNTRIES)
        out.append({
            "first": first, "last": last, "company": company,
            "email": f"{first.lower()}.{last.lower().replace('ü', 'ue')}{i}@{email_domain}",
            "country": country, "state": state, "industry": rng.choice(_INDUSTRIES),
            "employees": rng.choice((5, 20, 80, 250, 900, 4000, 12000)),
            "score": rng.randint(0, 100), "source": rng.choice(("Web", "Webinar", "Trade Show", "Partner Referral")),
        })
    return out


def generate(state: SandboxState, spec: dict[str, Any]) -> dict[str, int]:
    """Bulk-create synthetic records without API calls (tests need 10,000 leads fast)."""
    made: dict[str, int] = {}
    seed = int(spec.get("seed", 7))
    sf_spec = spec.get("salesforce") or {}
    hs_spec = spec.get("hubspot") or {}
    unknown = set(spec) - {"salesforce", "hubspot", "seed", "owner_id"}
    if unknown:
        raise ValueError(f"unknown generate key(s): {sorted(unknown)}")
    owner = spec.get("owner_id")
    for sobject, count in sf_spec.items():
        if sobject not in ("Lead", "Contact"):
            raise ValueError("salesforce generation supports Lead and Contact")
        people = synthetic_people(int(count), seed)
        for p in people:
            raw: dict[str, Any] = {"FirstName": p["first"], "LastName": p["last"], "Email": p["email"]}
            if sobject == "Lead":
                raw.update({"Company": p["company"], "Country": p["country"], "State": p["state"],
                            "Industry": p["industry"], "NumberOfEmployees": p["employees"], "LeadSource": p["source"]})
                if "Lead_Score__c" in state.sf.schema["Lead"].fields:
                    raw["Lead_Score__c"] = p["score"]
            else:
                raw.update({"MailingCountry": p["country"], "MailingState": p["state"]})
            if owner:
                raw["OwnerId"] = owner
            state.sf.insert_raw(sobject, raw, stamp=now_ms())
        made[f"salesforce.{sobject}"] = int(count)
    for otype, count in hs_spec.items():
        if otype != "contacts":
            raise ValueError("hubspot generation supports contacts")
        people = synthetic_people(int(count), seed)
        for p in people:
            props = {"firstname": p["first"], "lastname": p["last"], "email": p["email"], "company": p["company"],
                     "country": p["country"], "state": p["state"] or "", "industry": p["industry"],
                     "numemployees": p["employees"], "hubspotscore": p["score"], "hs_lead_status": "NEW",
                     "lifecyclestage": "lead"}
            state.hs.insert_raw("contacts", {"properties": {k: v for k, v in props.items() if v != ""}},
                                stamp=now_ms())
        made[f"hubspot.{otype}"] = int(count)
    return made

