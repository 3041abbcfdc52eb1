"""Field and property definitions for the objects the sandbox serves.

Both CRMs reject unknown fields and wrongly typed values, and the connectors must cope with
that, so every write and every query is checked against these definitions.  Seeds may add
custom fields (Salesforce ``Foo__c``) and custom properties (HubSpot) on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STRING_TYPES = frozenset({"string", "email", "phone", "url", "textarea", "picklist", "id", "reference"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
SF_TYPES = STRING_TYPES | NUMBER_TYPES | {"boolean", "date", "datetime"}


@dataclass(frozen=True)
class SfField:
    name: str
    type: str
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    length: int = 255
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "label": self.name.replace("__c", "").replace("_", " "),
            "length": self.length if self.type in STRING_TYPES else 0,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "custom": self.name.endswith("__c"),
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship,
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"active": True, "value": v, "label": v, "defaultValue": False} for v in self.picklist
            ],
        }


@dataclass
class SfObject:
    name: str
    fields: dict[str, SfField] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    lower: dict[str, str] = field(default_factory=dict)
    relationships: dict[str, SfField] = field(default_factory=dict)

    def add(self, f: SfField) -> None:
        self.fields[f.name] = f
        self.lower[f.name.lower()] = f.name
        if f.relationship:
            self.relationships[f.relationship.lower()] = f

    def field_named(self, name: str) -> SfField | None:
        canonical = self.lower.get(name.lower())
        return self.fields[canonical] if canonical else None


def _ro(name: str, type_: str, **kw: object) -> SfField:
    return SfField(name, type_, createable=False, updateable=False, **kw)  # type: ignore[arg-type]


def _ref(name: str, targets: tuple[str, ...], rel: str, **kw: object) -> SfField:
    return SfField(name, "reference", reference_to=targets, relationship=rel, length=18, **kw)  # type: ignore[arg-type]


LEAD_STATUSES = (
    "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted",
    "Rejected - Not my territory",  # a rep hands a lead back by status (leadroute's connectors.<crm>.rejection)
)


@dataclass(frozen=True)
class OpportunityStage:
    """One value of Opportunity ``StageName`` with what Salesforce derives from it (the OpportunityStage object)."""

    name: str
    probability: int
    closed: bool = False
    won: bool = False


# A new org's default sales process, in order.
OPPORTUNITY_STAGES = (
    OpportunityStage("Prospecting", 10),
    OpportunityStage("Qualification", 10),
    OpportunityStage("Needs Analysis", 20),
    OpportunityStage("Value Proposition", 50),
    OpportunityStage("Id. Decision Makers", 60),
    OpportunityStage("Perception Analysis", 70),
    OpportunityStage("Proposal/Price Quote", 75),
    OpportunityStage("Negotiation/Review", 90),
    OpportunityStage("Closed Won", 100, closed=True, won=True),
    OpportunityStage("Closed Lost", 0, closed=True),
)
STAGE_BY_NAME = {s.name.lower(): s for s in OPPORTUNITY_STAGES}
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Trade Show", "Webinar", "Other")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")


def _audit() -> list[SfField]:
    return [
        _ro("Id", "id", length=18, nillable=False),
        _ro("IsDeleted", "boolean", nillable=False),
        _ro("CreatedDate", "datetime", nillable=False),
        SfField("CreatedById", "reference", createable=False, updateable=False, reference_to=("User",),
                relationship="CreatedBy", length=18),
        _ro("LastModifiedDate", "datetime", nillable=False),
        SfField("LastModifiedById", "reference", createable=False, updateable=False, reference_to=("User",),
                relationship="LastModifiedBy", length=18),
        _ro("SystemModstamp", "datetime", nillable=False),
    ]


def _address(prefix: str) -> list[SfField]:
    return [
        SfField(f"{prefix}Street", "textarea"),
        SfField(f"{prefix}City", "string", length=40),
        SfField(f"{prefix}State", "string", length=80),
        SfField(f"{prefix}PostalCode", "string", length=20),
        SfField(f"{prefix}Country", "string", length=80),
    ]


def standard_sobjects() -> dict[str, SfObject]:
    """The standard objects (and the fields of them) the sandbox knows."""
    defs: dict[str, tuple[tuple[str, ...], list[SfField]]] = {
        "Lead": (
            ("LastName", "Company"),
            [
                SfField("FirstName", "string", length=40),
                SfField("LastName", "string", length=80, nillable=False),
                _ro("Name", "string", length=121),
                SfField("Company", "string", nillable=False),
                SfField("Title", "string", length=128),
                SfField("Email", "email", length=80),
                SfField("Phone", "phone", length=40),
                SfField("MobilePhone", "phone", length=40),
                SfField("Website", "url"),
                *_address(""),
                SfField("Status", "picklist", picklist=LEAD_STATUSES, restricted=True, length=40),
                SfField("LeadSource", "picklist", picklist=LEAD_SOURCES, length=40),
                SfField("Industry", "picklist", length=40),
                SfField("Rating", "picklist", picklist=("Hot", "Warm", "Cold"), length=40),
                SfField("AnnualRevenue", "currency"),
                SfField("NumberOfEmployees", "int"),
                _ref("OwnerId", ("User", "Group"), "Owner"),
                _ro("IsConverted", "boolean", nillable=False),
                _ro("ConvertedDate", "date"),
                SfField("ConvertedAccountId", "reference", createable=False, updateable=False,
                        reference_to=("Account",), relationship="ConvertedAccount", length=18),
                SfField("ConvertedContactId", "reference", createable=False, updateable=False,
                        reference_to=("Contact",), relationship="ConvertedContact", length=18),
                SfField("ConvertedOpportunityId", "reference", createable=False, updateable=False,
                        reference_to=("Opportunity",), relationship="ConvertedOpportunity", length=18),
                SfField("IsUnreadByOwner", "boolean"),
                SfField("Description", "textarea", length=32000),
                _ro("LastActivityDate", "date"),
                *_audit(),
            ],
        ),
        "Contact": (
            ("LastName",),
            [
                SfField("FirstName", "string", length=40),
                SfField("LastName", "string", length=80, nillable=False),
                _ro("Name", "string", length=121),
                SfField("Email", "email", length=80),
                SfField("Phone", "phone", length=40),
                SfField("Title", "string", length=128),
                SfField("Department", "string", length=80),
                SfField("LeadSource", "picklist", picklist=LEAD_SOURCES, length=40),
                _ref("AccountId", ("Account",), "Account"),
                _ref("OwnerId", ("User",), "Owner"),
                *_address("Mailing"),
                SfField("Description", "textarea", length=32000),
                _ro("LastActivityDate", "date"),
                *_audit(),
            ],
        ),
        "Account": (
            ("Name",),
            [
                SfField("Name", "string", nillable=False),
                SfField("Website", "url"),
                SfField("Phone", "phone", length=40),
                SfField("Industry", "picklist", length=40),
                SfField("Type", "picklist", length=40,
                        picklist=("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")),
                SfField("NumberOfEmployees", "int"),
                SfField("AnnualRevenue", "currency"),
                *_address("Billing"),
                _ref("OwnerId", ("User",), "Owner"),
                SfField("Description", "textarea", length=32000),
                _ro("LastActivityDate", "date"),
                *_audit(),
            ],
        ),
        "Opportunity": (
            ("Name", "StageName", "CloseDate"),
            [
                SfField("Name", "string", length=120, nillable=False),
                _ref("AccountId", ("Account",), "Account"),
                SfField("StageName", "picklist", picklist=tuple(s.name for s in OPPORTUNITY_STAGES), restricted=True,
                        length=255, nillable=False),
                SfField("Amount", "currency"),
                SfField("Probability", "percent"),
                SfField("CloseDate", "date", nillable=False),
                SfField("Type", "picklist", length=255,
                        picklist=("Existing Customer - Upgrade", "Existing Customer - Replacement",
                                  "Existing Customer - Downgrade", "New Customer")),
                SfField("LeadSource", "picklist", picklist=LEAD_SOURCES, length=40),
                SfField("NextStep", "string", length=255),
                _ro("IsClosed", "boolean", nillable=False),
                _ro("IsWon", "boolean", nillable=False),
                _ref("OwnerId", ("User",), "Owner"),
                SfField("Description", "textarea", length=32000),
                _ro("LastActivityDate", "date"),
                *_audit(),
            ],
        ),
        "Organization": (
            (),
            [
                _ro("Name", "string", length=80),
                _ro("DefaultCurrencyIsoCode", "picklist", length=255),
                _ro("IsSandbox", "boolean"),
                _ro("OrganizationType", "picklist", length=255),
                *_audit(),
            ],
        ),
        "User": (
            ("Username", "LastName", "Email"),
            [
                SfField("Username", "string", length=80, nillable=False),
                SfField("FirstName", "string", length=40),
                SfField("LastName", "string", length=80, nillable=False),
                _ro("Name", "string", length=121),
                SfField("Email", "email", length=128, nillable=False),
                SfField("Alias", "string", length=8),
                SfField("Title", "string", length=80),
                SfField("Department", "string", length=80),
                SfField("IsActive", "boolean"),
                SfField("TimeZoneSidKey", "picklist", length=40),
                SfField("LanguageLocaleKey", "picklist", length=40),
                _ref("ManagerId", ("User",), "Manager"),
                *_audit(),
            ],
        ),
        "Group": (
            ("Name",),
            [
                SfField("Name", "string", length=40, nillable=False),
                SfField("DeveloperName", "string", length=80),
                SfField("Type", "picklist", picklist=("Queue", "Regular"), restricted=True, length=40),
                SfField("Email", "email"),
                *_audit(),
            ],
        ),
        "Task": (
            (),
            [
                SfField("Subject", "picklist", length=255),
                SfField("Status", "picklist", picklist=TASK_STATUSES, restricted=True, length=40),
                SfField("Priority", "picklist", picklist=("High", "Normal", "Low"), restricted=True, length=40),
                SfField("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other"), length=40),
                SfField("TaskSubtype", "picklist", picklist=("Task", "Email", "Call"), length=40,
                        updateable=False),
                _ref("WhoId", ("Lead", "Contact"), "Who"),
                _ref("WhatId", ("Account",), "What"),
                _ref("OwnerId", ("User", "Group"), "Owner"),
                SfField("ActivityDate", "date"),
                _ro("IsClosed", "boolean", nillable=False),
                _ro("CompletedDateTime", "datetime"),
                SfField("CallDurationInSeconds", "int"),
                SfField("Description", "textarea", length=32000),
                *_audit(),
            ],
        ),
    }
    out: dict[str, SfObject] = {}
    for name, (required, fields) in defs.items():
        obj = SfObject(name, required=required)
        for f in fields:
            obj.add(f)
        out[name] = obj
    return out


def currency_field(currencies: tuple[str, ...]) -> SfField:
    """``CurrencyIsoCode``: on every currency-bearing object of a multi-currency org, and only there."""
    return SfField("CurrencyIsoCode", "picklist", picklist=currencies, restricted=True, length=3)


def custom_sf_field(name: str, spec: str | dict[str, object]) -> SfField:
    """Build a custom field from seed config: ``"double"`` or ``{"type": "picklist", ...}``."""
    if isinstance(spec, str):
        spec = {"type": spec}
    type_ = str(spec.get("type", "string"))
    if type_ not in SF_TYPES:
        raise ValueError(f"custom field {name}: unknown type {type_!r}")
    refs = tuple(spec.get("referenceTo", ()) or ())  # type: ignore[arg-type]
    rel = name[:-3] + "__r" if type_ == "reference" and name.endswith("__c") else None
    return SfField(
        name,
        type_,
        length=int(spec.get("length", 255)),  # type: ignore[arg-type]
        picklist=tuple(spec.get("values", ()) or ()),  # type: ignore[arg-type]
        restricted=bool(spec.get("restricted", False)),
        reference_to=refs,
        relationship=rel,
    )


# --- HubSpot ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class HsProperty:
    name: str
    type: str  # string | number | datetime | date | enumeration | bool
    read_only: bool = False
    options: tuple[str, ...] = ()


HS_LEAD_STATUSES = (
    "NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING",
)
HS_LIFECYCLE = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
    "evangelist", "other",
)


@dataclass(frozen=True)
class DealStage:
    """One stage of a deal pipeline: its internal id and what HubSpot derives from it."""

    id: str
    probability: float
    closed: bool = False
    won: bool = False


# The default "Sales Pipeline" (internal id ``default``) of a new portal, in order.
HS_DEAL_STAGES = (
    DealStage("appointmentscheduled", 0.2),
    DealStage("qualifiedtobuy", 0.4),
    DealStage("presentationscheduled", 0.6),
    DealStage("decisionmakerboughtin", 0.8),
    DealStage("contractsent", 0.9),
    DealStage("closedwon", 1.0, closed=True, won=True),
    DealStage("closedlost", 0.0, closed=True),
)
HS_DEAL_STAGE_BY_ID = {s.id: s for s in HS_DEAL_STAGES}
# association type ids (HUBSPOT_DEFINED) between the object types the sandbox serves, by direction
HS_ASSOCIATION_TYPES = {
    ("contacts", "companies"): 279, ("companies", "contacts"): 280,
    ("contacts", "deals"): 4, ("deals", "contacts"): 3,
    ("notes", "contacts"): 202, ("contacts", "notes"): 201,
    ("notes", "companies"): 190, ("companies", "notes"): 189,
    ("deals", "companies"): 341, ("companies", "deals"): 342,
}


def _hs(*props: HsProperty) -> dict[str, HsProperty]:
    return {p.name: p for p in props}


def _hs_common() -> list[HsProperty]:
    return [
        HsProperty("hs_object_id", "number", read_only=True),
        HsProperty("createdate", "datetime", read_only=True),
        HsProperty("hubspot_owner_id", "enumeration"),
        HsProperty("hubspot_owner_assigneddate", "datetime", read_only=True),
    ]


def standard_hs_properties() -> dict[str, dict[str, HsProperty]]:
    """Properties per HubSpot object type (a realistic subset of the portal defaults)."""
    s = "string"
    contacts = _hs(
        *_hs_common(),
        HsProperty("lastmodifieddate", "datetime", read_only=True),
        HsProperty("email", s), HsProperty("firstname", s), HsProperty("lastname", s),
        HsProperty("phone", s), HsProperty("mobilephone", s), HsProperty("company", s),
        HsProperty("website", s), HsProperty("jobtitle", s), HsProperty("address", s),
        HsProperty("city", s), HsProperty("state", s), HsProperty("zip", s), HsProperty("country", s),
        HsProperty("industry", s), HsProperty("numemployees", "number"), HsProperty("annualrevenue", "number"),
        HsProperty("hs_lead_status", "enumeration", options=HS_LEAD_STATUSES),
        HsProperty("lifecyclestage", "enumeration", options=HS_LIFECYCLE),
        *(HsProperty(f"hs_lifecyclestage_{stage}_date", "datetime", read_only=True) for stage in HS_LIFECYCLE),
        HsProperty("hs_analytics_source", "enumeration"), HsProperty("hs_language", s),
        HsProperty("hubspotscore", "number"), HsProperty("associatedcompanyid", "number"),
        HsProperty("notes_last_updated", "datetime", read_only=True),
        HsProperty("hs_last_sales_activity_timestamp", "datetime", read_only=True),
        HsProperty("notes_last_contacted", "datetime", read_only=True),
        HsProperty("num_notes", "number", read_only=True),
        HsProperty("message", s),
        HsProperty("hs_email_domain", s, read_only=True),  # calculated from email, as HubSpot does
    )
    companies = _hs(
        *_hs_common(),
        HsProperty("hs_lastmodifieddate", "datetime", read_only=True),
        HsProperty("name", s), HsProperty("domain", s), HsProperty("website", s), HsProperty("industry", s),
        HsProperty("numberofemployees", "number"), HsProperty("annualrevenue", "number"),
        HsProperty("city", s), HsProperty("state", s), HsProperty("zip", s), HsProperty("country", s),
        HsProperty("phone", s), HsProperty("lifecyclestage", "enumeration", options=HS_LIFECYCLE),
        HsProperty("type", s),
    )
    notes = _hs(
        *_hs_common(),
        HsProperty("hs_lastmodifieddate", "datetime", read_only=True),
        HsProperty("hs_timestamp", "datetime"), HsProperty("hs_note_body", s),
        HsProperty("hs_attachment_ids", s),
    )
    deals = _hs(
        *_hs_common(),
        HsProperty("hs_lastmodifieddate", "datetime", read_only=True),
        HsProperty("dealname", s), HsProperty("pipeline", "enumeration", options=("default",)),
        HsProperty("dealstage", "enumeration", options=tuple(st.id for st in HS_DEAL_STAGES)),
        HsProperty("amount", "number"), HsProperty("closedate", "datetime"),
        HsProperty("deal_currency_code", "enumeration"), HsProperty("dealtype", "enumeration"),
        HsProperty("description", s),
        HsProperty("hs_is_closed", "bool", read_only=True),
        HsProperty("hs_is_closed_won", "bool", read_only=True),
        HsProperty("hs_is_closed_lost", "bool", read_only=True),
        HsProperty("hs_deal_stage_probability", "number", read_only=True),
    )
    return {"contacts": contacts, "companies": companies, "notes": notes, "deals": deals}


HS_DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "notes": ("createdate", "hs_lastmodifieddate", "hs_object_id", "hs_note_body", "hs_timestamp"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id",
              "pipeline"),
}
HS_MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
                        "notes": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
HS_SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "notes": "NOTE", "deals": "DEAL"}
