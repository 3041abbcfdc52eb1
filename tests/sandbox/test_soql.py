"""The SOQL subset: every construct evaluates as Salesforce would, every syntax error is refused
with Salesforce's error code and caret-and-position message."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.soql import SoqlError, compile_query, parse, sort_records, tokenize
from sandbox.state import SalesforceStore

OWNER = "0055e000001AbCdAAK"
QUEUE = "00G5e000000TrIaEAK"


@pytest.fixture(scope="module")
def store() -> SalesforceStore:
    seed = {
        "custom_fields": {"Lead": {"Lead_Score__c": "double"}},
        "records": {
            "User": [{"Id": OWNER, "Username": "sarah@x", "FirstName": "Sarah", "LastName": "Chen",
                      "Email": "sarah@example.com"}],
            "Group": [{"Id": QUEUE, "Name": "Triage", "Type": "Queue"}],
            "Account": [{"Name": "Globex", "Website": "https://globex.com", "OwnerId": OWNER}],
            "Lead": [
                {"FirstName": "Ann", "LastName": "Alpha", "Company": "Acme", "Email": "ann@acme.com",
                 "Country": "US", "NumberOfEmployees": 50, "Lead_Score__c": 90, "OwnerId": OWNER,
                 "CreatedDate": "2024-01-01T10:00:00.000+0000"},
                {"FirstName": "Bob", "LastName": "beta", "Company": "Globex", "Email": "bob@globex.com",
                 "Country": "DE", "NumberOfEmployees": 5000, "Lead_Score__c": 40, "OwnerId": QUEUE,
                 "Status": "Working - Contacted", "CreatedDate": "2024-02-01T10:00:00.000+0000"},
                {"LastName": "Gamma", "Company": "Initech", "Country": None, "OwnerId": QUEUE,
                 "CreatedDate": "2024-03-01T10:00:00.000+0000"},
            ],
        },
    }
    return SalesforceStore(seed)


def run(store: SalesforceStore, soql: str) -> list[dict[str, Any]]:
    cq = compile_query(soql, store)
    rows = [r for r in store.live(cq.sobject) if cq.predicate(r)]
    rows = sort_records(rows, cq.order) if cq.order else rows
    rows = rows[cq.offset or 0 :]
    return rows[: cq.limit] if cq.limit is not None else rows


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["LastName"] for r in rows]


def refused(store: SalesforceStore, soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        compile_query(soql, store)
    return info.value


# --- constructs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "expected"), [
    ("Country = 'US'", ["Alpha"]),
    ("Country = 'us'", ["Alpha"]),  # string comparison is case-insensitive
    ("Country != 'US'", ["beta", "Gamma"]),  # != matches nulls too
    ("Country <> 'US'", ["beta", "Gamma"]),
    ("NumberOfEmployees < 100", ["Alpha"]),
    ("NumberOfEmployees <= 50", ["Alpha"]),
    ("NumberOfEmployees > 50", ["beta"]),
    ("NumberOfEmployees >= 5000", ["beta"]),
    ("Lead_Score__c >= 40.5", ["Alpha"]),
    ("Country IN ('DE', 'FR')", ["beta"]),
    ("Country NOT IN ('DE')", ["Alpha", "Gamma"]),
    ("Email LIKE '%@globex.com'", ["beta"]),
    ("Company LIKE 'a_me'", ["Alpha"]),
    ("Country = null", ["Gamma"]),
    ("Country != null", ["Alpha", "beta"]),
    ("IsConverted = false", ["Alpha", "beta", "Gamma"]),
    ("CreatedDate > 2024-01-15T00:00:00Z", ["beta", "Gamma"]),
    ("CreatedDate < 2024-02-01T12:00:00+01:00", ["Alpha", "beta"]),  # offsets are honoured
    ("CreatedDate < 2024-02-01T12:00:00+02:00", ["Alpha"]),
    ("CreatedDate >= 2024-02-01T10:00:00.000+0000", ["beta", "Gamma"]),
    ("Country = 'US' OR Country = 'DE'", ["Alpha", "beta"]),
    ("Country = 'US' AND NumberOfEmployees < 100", ["Alpha"]),
    ("(Country = 'US' OR Country = 'DE') AND NumberOfEmployees > 100", ["beta"]),
    ("NOT Country = 'US'", ["beta", "Gamma"]),
    ("NOT (Country = 'US' OR Country = 'DE')", ["Gamma"]),
    ("Owner.Name = 'Triage'", ["beta", "Gamma"]),  # polymorphic relationship to a queue
    ("Owner.Email = 'sarah@example.com'", ["Alpha"]),
    ("Owner.Type = 'User'", ["Alpha"]),  # a polymorphic Owner's Type is the Name object's: User or Queue
    ("Owner.Type = 'Queue'", ["beta", "Gamma"]),
    ("Owner.Type != 'Queue'", ["Alpha"]),
    ("Status = 'Open - Not Contacted'", ["Alpha", "Gamma"]),
    ("Id = '{first}'", ["Alpha"]),
    ("Id IN ('{first}', '00Q000000000000AAA')", ["Alpha"]),
    ("CreatedDate = TODAY", []),
    ("CreatedDate < LAST_N_DAYS:7", ["Alpha", "beta", "Gamma"]),
])
def test_where_operators(store: SalesforceStore, where: str, expected: list[str]) -> None:
    first = next(iter(store.records["Lead"]))
    assert names(run(store, f"SELECT Id FROM Lead WHERE {where.format(first=first)}")) == expected


def test_keywords_objects_and_fields_are_case_insensitive(store: SalesforceStore) -> None:
    assert names(run(store, "select id, lastname from lead where country = 'US'")) == ["Alpha"]


def test_order_by_with_direction_and_null_placement(store: SalesforceStore) -> None:
    assert names(run(store, "SELECT Id FROM Lead ORDER BY Country")) == ["Gamma", "beta", "Alpha"]  # nulls first
    assert names(run(store, "SELECT Id FROM Lead ORDER BY Country DESC")) == ["Alpha", "beta", "Gamma"]
    assert names(run(store, "SELECT Id FROM Lead ORDER BY Country ASC NULLS LAST")) == ["beta", "Alpha", "Gamma"]
    assert names(run(store, "SELECT Id FROM Lead ORDER BY LastName")) == ["Alpha", "beta", "Gamma"]  # case-folded
    assert names(run(store, "SELECT Id FROM Lead ORDER BY OwnerId ASC, CreatedDate DESC")) == [
        "Alpha", "Gamma", "beta"]


def test_limit_and_offset(store: SalesforceStore) -> None:
    assert names(run(store, "SELECT Id FROM Lead ORDER BY CreatedDate LIMIT 2")) == ["Alpha", "beta"]
    assert names(run(store, "SELECT Id FROM Lead ORDER BY CreatedDate LIMIT 1 OFFSET 1")) == ["beta"]
    assert run(store, "SELECT Id FROM Lead LIMIT 0") == []


def test_count_forms(store: SalesforceStore) -> None:
    assert compile_query("SELECT COUNT() FROM Lead", store).count_only
    assert compile_query("SELECT COUNT(Id) FROM Lead", store).aggregate


def test_relationship_columns_resolve_through_references(store: SalesforceStore) -> None:
    cq = compile_query("SELECT Owner.Name, Owner.Email FROM Lead WHERE Country = 'US'", store)
    rec = run(store, "SELECT Id FROM Lead WHERE Country = 'US'")[0]
    assert [c.getter(rec) for c in cq.columns] == ["Sarah Chen", "sarah@example.com"]


def test_id_lookups_use_the_index(store: SalesforceStore) -> None:
    first = next(iter(store.records["Lead"]))
    assert compile_query(f"SELECT Id FROM Lead WHERE Id = '{first[:15]}'", store).id_filter == (first,)
    assert compile_query("SELECT Id FROM Lead WHERE Country = 'US'", store).id_filter is None


def test_tokenizer_recognises_literal_kinds() -> None:
    kinds = [t.kind for t in tokenize("x = 'a\\'b' 12 -3.5 2024-01-02 2024-01-02T03:04:05Z ( ) , . :")]
    assert kinds == ["IDENT", "OP", "STRING", "NUMBER", "NUMBER", "DATE", "DATETIME", "LPAREN", "RPAREN",
                     "COMMA", "DOT", "COLON", "EOF"]
    assert tokenize("'a\\'b'")[0].value == "a'b"


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("soql", "message", "column"), [
    ("", "unexpected token: <EOF>", None),
    ("SELEC Id FROM Lead", "unexpected token: 'SELEC'", 1),
    ("SELECT FROM Lead", "unexpected token: 'FROM'", 8),
    ("SELECT Id, FROM Lead", "unexpected token: 'FROM'", 12),
    ("SELECT Id Lead", "unexpected token: 'Lead'", 11),
    ("SELECT Id FROM", "unexpected token: <EOF>", 15),
    ("SELECT Id FROM Lead WHERE", "unexpected token: <EOF>", 26),
    ("SELECT Id FROM Lead WHERE Name", "unexpected token: <EOF>", 31),
    ("SELECT Id FROM Lead WHERE Name = ", "unexpected token: <EOF>", 34),
    ("SELECT Id FROM Lead WHERE Name = Bob", "unexpected token: 'Bob'", 34),
    ("SELECT Id FROM Lead WHERE a = 1 AND b = 2 OR c = 3", "unexpected token: 'OR'", 43),
    ("SELECT Id FROM Lead WHERE a = 1 OR b = 2 AND c = 3", "unexpected token: 'AND'", 42),
    ("SELECT Id FROM Lead WHERE (a = 1", "unexpected token: <EOF>", 33),
    ("SELECT Id FROM Lead WHERE a = 1)", "unexpected token: ')'", 32),
    ("SELECT Id FROM Lead WHERE a IN 'x'", "unexpected token: ''x''", 32),
    ("SELECT Id FROM Lead WHERE a IN ('x'", "unexpected token: <EOF>", 36),
    ("SELECT Id FROM Lead WHERE a NOT 'x'", "unexpected token: 'NOT'", 29),
    ("SELECT Id FROM Lead ORDER Name", "unexpected token: 'Name'", 27),
    ("SELECT Id FROM Lead ORDER BY Name NULLS", "unexpected token: <EOF>", 40),
    ("SELECT Id FROM Lead LIMIT x", "unexpected token: 'x'", 27),
    ("SELECT Id FROM Lead LIMIT -1", "unexpected token: '-1'", 27),
    ("SELECT Id FROM Lead LIMIT 5 extra", "unexpected token: 'extra'", 29),
    ("SELECT Id FROM Lead WHERE Name = :name", "Bind variables only allowed in Apex code", 34),
    ("SELECT Id FROM Lead WHERE CreatedDate > LAST_N_DAYS", "Invalid date literal", 41),
])
def test_syntax_errors_are_malformed_query(store: SalesforceStore, soql: str, message: str,
                                            column: int | None) -> None:
    err = refused(store, soql)
    assert err.code == "MALFORMED_QUERY"
    assert message in err.render(soql)
    if column is not None:
        rendered = err.render(soql)
        assert f"ERROR at Row:1:Column:{column}\n" in rendered
        assert rendered.startswith(f"\n{soql}\n{' ' * (column - 1)}^\n")


@pytest.mark.parametrize(("soql", "message"), [
    ("SELECT Id FROM Lead WHERE Name = 'unterminated", "mismatched character '<EOF>' expecting '''"),
    ("SELECT Id FROM Lead WHERE Name = 'bad \\q escape'", "Illegal character sequence '\\q' in string literal"),
    ("SELECT Id # FROM Lead", "no viable alternative at character '#'"),
    ('SELECT Id FROM Lead WHERE Name = "double"', "no viable alternative at character '\"'"),
    ("SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01T00:00:00", "needs Z or an offset"),
    ("SELECT Id FROM Lead WHERE CreatedDate > 2024-13-01T00:00:00Z", "Invalid datetime literal"),
    ("SELECT Id FROM Lead WHERE ConvertedDate = 2024-02-30", "Invalid date literal"),
    ("SELECT Id FROM Lead WHERE NumberOfEmployees > 5x", "no viable alternative at character 'x'"),
])
def test_lexical_errors_are_malformed_query(store: SalesforceStore, soql: str, message: str) -> None:
    err = refused(store, soql)
    assert err.code == "MALFORMED_QUERY"
    assert message in err.render(soql)


def test_unknown_object_is_invalid_type(store: SalesforceStore) -> None:
    err = refused(store, "SELECT Id FROM Leads")
    assert err.code == "INVALID_TYPE"
    assert "sObject type 'Leads' is not supported" in err.render("SELECT Id FROM Leads")


@pytest.mark.parametrize(("soql", "message"), [
    ("SELECT Nope FROM Lead", "No such column 'Nope' on entity 'Lead'"),
    ("SELECT Id FROM Lead WHERE Nope = 1", "No such column 'Nope' on entity 'Lead'"),
    ("SELECT Id FROM Lead ORDER BY Nope", "No such column 'Nope' on entity 'Lead'"),
    ("SELECT Owner.Nope FROM Lead", "No such column 'Nope' on entity 'User'"),
    ("SELECT Boss.Name FROM Lead", "Didn't understand relationship 'Boss' in field path"),
    ("SELECT Id FROM Lead WHERE NumberOfEmployees = '5'", "must be of type integer and should not be enclosed"),
    ("SELECT Id FROM Lead WHERE IsConverted = 'false'", "must be of type boolean"),
    ("SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01", "must be of type dateTime"),
    ("SELECT Id FROM Lead WHERE ConvertedDate > 2024-01-01T00:00:00Z", "must be of type date"),
    ("SELECT Id FROM Lead WHERE Country = 5", "must be of type string and should be enclosed in quotes"),
])
def test_name_and_type_errors_are_invalid_field(store: SalesforceStore, soql: str, message: str) -> None:
    err = refused(store, soql)
    assert err.code == "INVALID_FIELD"
    assert message in err.render(soql)


def test_other_semantic_refusals(store: SalesforceStore) -> None:
    assert refused(store, "SELECT Id FROM Lead WHERE NumberOfEmployees LIKE '5%'").code == \
        "INVALID_QUERY_FILTER_OPERATOR"
    assert refused(store, "SELECT Id FROM Lead WHERE OwnerId LIKE '005%'").code == \
        "INVALID_QUERY_FILTER_OPERATOR"  # LIKE is for text fields only, not ids or references
    assert refused(store, "SELECT Id FROM Lead WHERE IsConverted > false").code == "INVALID_QUERY_FILTER_OPERATOR"
    assert refused(store, "SELECT Id, Id FROM Lead").code == "DUPLICATE_FIELD"
    assert refused(store, "SELECT Id FROM Lead OFFSET 2001").code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert refused(store, "SELECT COUNT(), Id FROM Lead").code == "MALFORMED_QUERY"
    assert refused(store, "SELECT Id FROM Lead WHERE Id IN (SELECT LeadId FROM Task)").code == "MALFORMED_QUERY"
    assert refused(store, "SELECT Id FROM Lead GROUP BY Country").code == "MALFORMED_QUERY"


def test_parse_builds_the_tree_the_evaluator_runs() -> None:
    q = parse("SELECT Id, Owner.Name FROM Lead WHERE (A = 1 OR B = 2) AND C != null ORDER BY D DESC LIMIT 5")
    assert [s.path for s in q.select] == [("Id",), ("Owner", "Name")]  # type: ignore[union-attr]
    assert q.where.op == "AND" and q.where.items[0].op == "OR"
    assert (q.order[0].descending, q.order[0].nulls_first, q.limit) == (True, False, 5)


def test_group_names_the_queue_object_after_from_and_group_by_is_still_refused() -> None:
    assert parse("SELECT Id, Name, Email FROM Group WHERE Type = 'Queue' ORDER BY Name").sobject == "Group"
    with pytest.raises(SoqlError, match="GROUP is not supported"):
        parse("SELECT Id FROM Lead GROUP BY Name")
