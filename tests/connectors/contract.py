"""The contract every connector keeps, as test classes to subclass: one small subclass per CRM.

A CRM's contract file (``test_contract_salesforce.py``...) declares a :class:`Crm` harness (how
to create records in that CRM, act as a rep in it and read back what the connector wrote) and
a test class deriving from :class:`ConnectorContract` whose ``crm`` fixture returns the harness
around a connector. Every test below then runs against it; a third CRM adds a file, not
branches. The contract comes in parts, so a double that speaks only some of the interface
(the SLA sweep's in-memory CRM) is held to exactly the parts it implements:

* :class:`ReadContract`: ``fetch`` and ``read_acks``;
* :class:`WriteContract`: ``write_owners`` and ``attach_reasons``, one result per record;
* :class:`ChangesContract`: the change feed, watermarks and the intake condition;
* :class:`OwnersContract`: ``list_owners``;
* :class:`AccountContract`: account owners by company domain, cached;
* :class:`OutcomeContract`: ``read_outcomes``, what became of leads (converted, opportunity, won or
  lost, amount), read in batches;
* :class:`PipelineContract`: ``open_pipeline``, open opportunities (deals) per owner in one paged read;
* :class:`DomainContract`: ``recent_by_domain``, recent leads and contacts on company domains, batched;
* :class:`TransportContract`: batch sizes, building from the environment, no secret leaks
  (real connectors over HTTP against the sandbox, which counts the calls).

Classes here have no ``Test`` prefix: pytest collects them only through a CRM's subclass.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import structlog

from connectors.base import (
    Connector,
    Outcome,
    OutcomeState,
    OwnerUpdate,
    Watermark,
    WriteStatus,
    create_connector,
    get_connector_class,
)
from connectors.redact import MASK

# ----------------------------------------------------------------------------- the harness


class Crm(ABC):
    """What the contract suite needs to know about one CRM: its connector and how to act in it."""

    name: ClassVar[str]
    unknown_id: ClassVar[str]  # a well-formed id no record has
    bogus_owner: ClassVar[str]  # a well-formed id no user or queue has
    owner_field: ClassVar[str]  # the record field holding the owner id
    reason_field: ClassVar[str]  # the record field holding the routing reason

    connector: Connector

    @abstractmethod
    def generate(self, count: int) -> list[str]:
        """Create ``count`` new lead records (open, unowned by the contract's owners); their ids, oldest first."""

    @abstractmethod
    def record(self, record_id: str) -> dict[str, Any]:
        """The record's fields as the CRM holds them now."""

    @abstractmethod
    def all_owners(self) -> dict[str, str | None]:
        """Every lead's owner, in one look."""

    @abstractmethod
    def acknowledge(self, record_id: str) -> None:
        """Act as the owning rep: do what the CRM's default acknowledgement condition looks for."""

    @abstractmethod
    def touch(self, record_id: str) -> None:
        """An edit by someone else (changes the modification stamp, not the intake)."""

    @abstractmethod
    def delete(self, record_id: str) -> None:
        """Delete the record, as a user would."""

    @abstractmethod
    def writes(self, status: str | None = None) -> int:
        """Write calls the CRM answered so far (with ``status``, e.g. ``"200"``, when given)."""

    def owner(self, record_id: str) -> str | None:
        return self.record(record_id).get(self.owner_field)

    def reason(self, record_id: str) -> str | None:
        return self.record(record_id).get(self.reason_field)

    def owners(self) -> tuple[str, str]:
        """Two distinct active owner ids."""
        active = [u.id for u in self.connector.list_owners() if u.active and u.kind == "user"]
        return active[0], active[1]

    def leave_intake(self, record_id: str) -> None:  # noqa: B027 - most CRMs need nothing more
        """What, besides having an owner, takes a record out of the default intake condition."""

    # what the outcome contract needs (a CRM double that does not read outcomes leaves these out)

    currency: ClassVar[str] = ""  # the currency amounts read back in, as the harness sets opportunities up
    outcome_batch: ClassVar[int] = 0  # leads one lead read of ``read_outcomes`` takes at most

    def convert(self, record_id: str, *, opportunity: bool = True, amount: float | None = None,
                won: bool | None = None) -> str | None:
        """Act as the rep who qualifies the lead: convert it, with an opportunity (its id is returned)
        for ``amount`` unless ``opportunity`` is false, then win or lose it if ``won`` says so."""
        raise NotImplementedError

    def outcome_calls(self, leads: int, opportunities: int) -> int:
        """The calls ``read_outcomes`` should make for that many existing leads with that many opportunities."""
        raise NotImplementedError

    def calls(self) -> int:
        """Every call the CRM has answered so far."""
        raise NotImplementedError

    # what the pipeline and domain contracts need

    pipeline_page: ClassVar[int] = 0  # records one page of ``open_pipeline``'s read holds
    domain_calls: ClassVar[int] = 0  # calls ``recent_by_domain`` makes for one chunk of domains

    def seed_pipeline(self, counts: dict[str, dict[str, int]]) -> None:
        """Give owners open and closed opportunities (deals): ``{owner id: {"open": n, "closed": m}}``."""
        raise NotImplementedError

    def domain_record(self, email: str, owner: str, created_at: datetime) -> str:
        """A lead-like record with ``email``, owned by ``owner``, created at ``created_at``; its id."""
        raise NotImplementedError


def drain(conn: Connector, since: Watermark | None, **kwargs: object) -> tuple[list[str], Watermark | None]:
    ids: list[str] = []
    watermark = since
    for page in conn.changes(since, **kwargs):  # type: ignore[arg-type]
        ids.extend(r.id for r in page.records)
        watermark = page.watermark
    return ids, watermark


# ----------------------------------------------------------------------------- the parts


class ReadContract:
    """``fetch`` and ``read_acks``: fresh records and acknowledgement facts; unknown ids are absent."""

    def test_fetch_returns_fresh_canonical_leads(self, crm: Crm) -> None:
        ids = crm.generate(2)
        crm.delete(ids[1])
        found = crm.connector.fetch([ids[0], ids[1], crm.unknown_id, "not an id"])
        assert list(found) == [ids[0]]
        lead = found[ids[0]].lead
        assert lead["id"] == ids[0]
        assert lead["email"] and "@" in lead["email"]
        assert lead["company"] and lead["country"]
        assert lead["employees"] is not None and lead["score"] is not None

    def test_read_acks(self, crm: Crm) -> None:
        ids = crm.generate(3)
        crm.acknowledge(ids[0])
        crm.delete(ids[2])
        acks = crm.connector.read_acks(ids)
        assert set(acks) == {ids[0], ids[1]}
        assert acks[ids[0]].acknowledged is True
        assert acks[ids[1]].acknowledged is False
        assert acks[ids[1]].closed is False
        assert acks[ids[0]].modstamp is not None


class WriteContract:
    """``write_owners`` and ``attach_reasons``: one result per record, in order; a bad record sinks no other."""

    def test_write_owners_reports_each_record(self, crm: Crm) -> None:
        ids = crm.generate(5)
        owner, other = crm.owners()
        updates = [
            OwnerUpdate(ids[0], owner, "Rule 'enterprise': round robin -> Sarah"),
            OwnerUpdate(ids[1], other, "Rule 'smb'"),
            OwnerUpdate(ids[2], crm.bogus_owner, "to nobody"),
            OwnerUpdate(crm.unknown_id, owner, "gone"),
            OwnerUpdate(ids[3], owner, None),
        ]
        results = crm.connector.write_owners(updates)
        assert [r.id for r in results] == [u.id for u in updates]
        assert [r.status for r in results] == [WriteStatus.OK, WriteStatus.OK, WriteStatus.FATAL, WriteStatus.FATAL,
                                               WriteStatus.OK]
        assert results[2].code and results[3].code
        assert crm.owner(ids[0]) == owner and crm.reason(ids[0]) == "Rule 'enterprise': round robin -> Sarah"
        assert crm.owner(ids[1]) == other
        assert crm.owner(ids[3]) == owner and crm.reason(ids[3]) is None
        assert crm.owner(ids[4]) != owner

    def test_attach_reasons(self, crm: Crm) -> None:
        ids = crm.generate(2)
        results = crm.connector.attach_reasons({ids[0]: "SLA: reminded owner", ids[1]: "SLA: escalated to manager"})
        assert all(r.ok for r in results)
        assert crm.reason(ids[0]) == "SLA: reminded owner"
        assert crm.reason(ids[1]) == "SLA: escalated to manager"

    def test_attach_reasons_to_a_deleted_record_fails_it_alone(self, crm: Crm) -> None:
        ids = crm.generate(2)
        crm.delete(ids[0])
        results = crm.connector.attach_reasons({ids[0]: "SLA: reminded owner", ids[1]: "SLA: reminded owner"})
        assert [r.id for r in results] == ids
        assert results[0].status is WriteStatus.FATAL and results[0].code
        assert results[1].ok and crm.reason(ids[1]) == "SLA: reminded owner"

    def test_duplicate_ids_in_one_batch_last_one_wins(self, crm: Crm) -> None:
        ids = crm.generate(2)
        owner, other = crm.owners()
        results = crm.connector.write_owners([OwnerUpdate(ids[0], owner), OwnerUpdate(ids[1], owner),
                                              OwnerUpdate(ids[0], other)])
        assert [r.id for r in results] == [ids[0], ids[1], ids[0]] and all(r.ok for r in results)
        assert crm.owner(ids[0]) == other and crm.writes("200") == 1


class ChangesContract:
    """The change feed: pages with watermarks, never a record twice, the intake condition applied."""

    def test_changes_page_with_watermarks_and_never_repeat(self, crm: Crm) -> None:
        first, watermark = drain(crm.connector, None)
        assert first and len(first) == len(set(first))
        assert watermark is not None

        again, watermark2 = drain(crm.connector, Watermark.decode(watermark.encode()))
        assert again == []  # the overlap window re-reads them, the watermark filters them out
        assert watermark2 is not None

        new = crm.generate(3)
        crm.touch(first[0])
        later, _ = drain(crm.connector, watermark2)
        assert sorted(later) == sorted([*new, first[0]])

    def test_changes_apply_the_intake_condition(self, crm: Crm) -> None:
        ids, _ = drain(crm.connector, None)
        taken = ids[0]
        owner, _ = crm.owners()
        [result] = crm.connector.write_owners([OwnerUpdate(taken, owner, "routed")])
        assert result.ok
        crm.leave_intake(taken)
        remaining, _ = drain(crm.connector, None)
        assert taken not in remaining
        everything, _ = drain(crm.connector, None, intake_only=False)
        assert taken in everything
        record = crm.connector.fetch([taken])[taken]
        assert record.needs_routing is False and record.owner_id == owner

    def test_changes_read_only_what_queueing_needs_and_fetch_reads_the_whole_lead(self, crm: Crm) -> None:
        new = crm.generate(2)
        changed = [r for page in crm.connector.changes(None) for r in page.records if r.id in new]
        assert sorted(r.id for r in changed) == sorted(new)
        assert all(r.lead == {"id": r.id} and r.needs_routing and r.modstamp for r in changed)
        fetched = crm.connector.fetch(new)
        assert all(fetched[i].lead.get("email") and fetched[i].lead.get("company") for i in new)


    def test_owned_changes_read_owned_records_whole_since_their_own_watermark(self, crm: Crm) -> None:
        waiting, _ = drain(crm.connector, None)
        taken, still, routed = waiting[0], waiting[1], waiting[2]
        _, start = owned(crm.connector, None)  # everything owned so far: the watermark to go on from
        owner, _ = crm.owners()
        assert all(r.ok for r in crm.connector.write_owners([OwnerUpdate(i, owner, "routed") for i in (taken, routed)]))
        crm.leave_intake(taken)
        crm.touch(still)
        changed, watermark = owned(crm.connector, start)
        assert taken in changed and still not in changed  # owned by a person only: not a queue, not nobody
        assert routed in changed  # whether or not the intake condition still holds for it
        record = changed[taken]
        assert record.owner_id == owner and record.needs_routing is False and record.modstamp
        assert record.lead == crm.connector.fetch([taken])[taken].lead  # read whole, in the same query
        assert taken not in owned(crm.connector, watermark)[0]  # never the same modification twice
        crm.touch(taken)
        assert list(owned(crm.connector, watermark)[0]) == [taken]

    def test_other_fields_are_written_with_the_owner(self, crm: Crm) -> None:
        waiting, _ = drain(crm.connector, None)
        owner, _ = crm.owners()
        [result] = crm.connector.write_owners([OwnerUpdate(waiting[0], owner, "routed", {crm.reason_field: "by status"})])
        assert result.ok and crm.owner(waiting[0]) == owner and crm.reason(waiting[0]) == "by status"


def owned(conn: Connector, since: Watermark | None) -> tuple[dict[str, Any], Watermark | None]:
    """Every owned record changed since ``since``, by id, and the watermark after them."""
    found: dict[str, Any] = {}
    watermark = since
    for page in conn.owned_changes(since):
        found.update((r.id, r) for r in page.records)
        watermark = page.watermark
    return found, watermark


class OwnersContract:
    """``list_owners``: every user and queue that can own records, active or not."""

    def test_list_owners(self, crm: Crm) -> None:
        owners = crm.connector.list_owners()
        assert len({o.id for o in owners}) == len(owners)
        assert any(o.active for o in owners)
        assert any(not o.active for o in owners)  # the seeds keep a former rep / an archived owner
        assert all(o.name for o in owners)


class AccountContract:
    """Account owners by company domain: normalised as leads' domains are, cached, looked up in bulk.

    The harness needs an ``admin`` (the sandbox's, which counts every call it serves) and a
    seed with accounts on ``globex.com`` and ``initech.com``.
    """

    def test_account_owner_by_domain_is_cached(self, crm: Any) -> None:
        owner = crm.connector.account_owner("globex.com")
        assert owner
        before = crm.admin.counters()["total"]
        assert crm.connector.account_owner("GLOBEX.com") == owner
        assert crm.connector.account_owner("no-such-company-domain.com") is None
        assert crm.connector.account_owner("no-such-company-domain.com") is None
        assert crm.admin.counters()["total"] == before + 1  # one lookup for the unknown domain, then cached
        assert crm.connector.account_owner("not a domain") is None

    def test_account_owners_for_many_domains_match_the_one_by_one_answers(self, crm: Any) -> None:
        connector = crm.connector
        domains = ["globex.com", "initech.com", "unknown-domain.example", "globex.com", ""]
        many = connector.account_owners(domains)
        assert set(many) == {"globex.com", "initech.com", "unknown-domain.example", ""}
        for domain in ("globex.com", "initech.com", "unknown-domain.example"):
            assert many[domain] == connector.account_owner(domain), domain
        assert many["globex.com"] is not None and many["unknown-domain.example"] is None

    def test_account_owners_for_uncached_domains_cost_one_query_per_chunk_not_one_per_domain(self, crm: Any) -> None:
        domains = [f"batch-{i}-{crm.name}.com" for i in range(30)] + ["globex.com"]
        before = crm.admin.counters()["total"]
        many = crm.connector.account_owners(domains)
        calls = crm.admin.counters()["total"] - before
        assert many["globex.com"] is not None and all(many[d] is None for d in domains[:-1])
        assert calls <= 2  # one lookup (and, for Salesforce, one on Contacts for the domains without an Account)
        assert crm.connector.account_owners(domains) == many
        assert crm.admin.counters()["total"] - before == calls  # all cached now

    def test_every_spelling_of_a_company_domain_shares_one_lookup_and_answers_as_asked(self, crm: Any) -> None:
        """Domains are normalised as a lead's are (case, scheme, www), and the answer is keyed by the spelling asked."""
        connector = crm.connector
        connector.list_owners()  # any login happens now, not inside the counted lookups
        before = crm.admin.counters()["total"]
        owner = connector.account_owner("WWW.Globex.com")
        assert owner is not None
        assert crm.admin.counters()["total"] == before + 1
        assert connector.account_owner("globex.com") == owner
        assert connector.account_owners(["https://www.globex.com/about", "Globex.COM"]) == {
            "https://www.globex.com/about": owner, "Globex.COM": owner}
        assert crm.admin.counters()["total"] == before + 1  # every spelling came from the one cached answer

        uncached = connector.account_owners(["INITECH.com", "www.initech.com"])
        assert list(uncached) == ["INITECH.com", "www.initech.com"]
        assert uncached["INITECH.com"] == uncached["www.initech.com"] == connector.account_owner("initech.com") is not None
        assert crm.admin.counters()["total"] == before + 2

    def test_free_mail_and_unreadable_domains_have_no_account_and_cost_no_call(self, crm: Any) -> None:
        crm.connector.list_owners()
        before = crm.admin.counters()["total"]
        assert crm.connector.account_owners(["gmail.com", "not a domain", "", "localhost"]) == {
            "gmail.com": None, "not a domain": None, "": None, "localhost": None}
        assert crm.admin.counters()["total"] == before


class OutcomeContract:
    """``read_outcomes``: what became of each lead, read back from the CRM a few calls per batch.

    The harness converts leads as a rep would (``convert``), says what a read should cost
    (``outcome_calls``) and counts the calls the CRM answered (``calls``).
    """

    def test_a_won_a_lost_and_an_open_lead_read_back_as_such(self, crm: Crm) -> None:
        ids = crm.generate(3)
        won = crm.convert(ids[0], amount=12500, won=True)
        lost = crm.convert(ids[1], amount=800, won=False)
        outcomes = crm.connector.read_outcomes(ids)
        assert set(outcomes) == set(ids)

        winner = outcomes[ids[0]]
        assert winner.status is OutcomeState.WON
        assert winner.reached == (OutcomeState.CONVERTED, OutcomeState.OPPORTUNITY, OutcomeState.WON)
        assert winner.converted and winner.converted_at is not None and winner.converted_at <= datetime.now(UTC)
        assert winner.opportunity_id == won and winner.opportunity_created_at is not None and winner.opportunities == 1
        assert winner.is_won and winner.is_closed and winner.closed_at is not None and winner.stage
        assert (winner.amount, winner.currency) == (12500.0, crm.currency)

        loser = outcomes[ids[1]]
        assert loser.status is OutcomeState.LOST and loser.reached[-1] is OutcomeState.LOST
        assert loser.opportunity_id == lost and loser.is_closed and not loser.is_won and loser.closed_at is not None
        assert (loser.amount, loser.currency) == (800.0, crm.currency)

        still_open = outcomes[ids[2]]
        assert still_open.status is OutcomeState.OPEN and still_open.reached == ()
        assert still_open == Outcome(ids[2], fields=still_open.fields)  # nothing converted, no opportunity, no amount

    def test_a_conversion_without_an_opportunity_and_an_open_opportunity(self, crm: Crm) -> None:
        ids = crm.generate(2)
        assert crm.convert(ids[0], opportunity=False) is None
        opened = crm.convert(ids[1])
        outcomes = crm.connector.read_outcomes(ids)
        converted = outcomes[ids[0]]
        assert converted.status is OutcomeState.CONVERTED and converted.reached == (OutcomeState.CONVERTED,)
        assert converted.converted_at is not None and converted.opportunity_id is None and converted.opportunities == 0
        pending = outcomes[ids[1]]
        assert pending.status is OutcomeState.OPPORTUNITY
        assert pending.reached == (OutcomeState.CONVERTED, OutcomeState.OPPORTUNITY)
        assert pending.opportunity_id == opened and pending.stage and not pending.is_closed and not pending.is_won
        assert pending.closed_at is None and pending.amount is None

    def test_deleted_unknown_and_malformed_ids_are_absent(self, crm: Crm) -> None:
        ids = crm.generate(2)
        crm.delete(ids[1])
        outcomes = crm.connector.read_outcomes([ids[0], ids[1], crm.unknown_id, "not an id", ids[0]])
        assert list(outcomes) == [ids[0]]
        assert crm.connector.read_outcomes([]) == {}

    def test_reads_are_split_at_the_crms_batch_limit_and_cost_no_call_per_lead(self, crm: Crm) -> None:
        leads = crm.outcome_batch * 2 + 1
        ids = crm.generate(leads)
        crm.convert(ids[0], amount=100, won=True)
        crm.convert(ids[-1], amount=200, won=False)
        crm.connector.read_outcomes(ids[:1])  # what a connector learns once (a session, the org's currency) is learnt
        before = crm.calls()
        outcomes = crm.connector.read_outcomes(ids)
        spent = crm.calls() - before
        assert set(outcomes) == set(ids)
        assert (outcomes[ids[0]].status, outcomes[ids[-1]].status) == (OutcomeState.WON, OutcomeState.LOST)
        assert sum(o.status is OutcomeState.OPEN for o in outcomes.values()) == leads - 2
        assert spent == crm.outcome_calls(leads, 2)
        assert spent < 10  # for hundreds of leads


class PipelineContract:
    """``open_pipeline``: open opportunities (deals) per owner, counted from one paged read of the CRM."""

    def test_open_pipeline_counts_only_open_ones_per_owner(self, crm: Crm) -> None:
        a, b = crm.owners()
        before = crm.connector.open_pipeline()
        crm.seed_pipeline({a: {"open": 3, "closed": 2}, b: {"open": 1, "closed": 4}})
        after = crm.connector.open_pipeline()
        assert after.get(a, 0) - before.get(a, 0) == 3
        assert after.get(b, 0) - before.get(b, 0) == 1
        assert all(n > 0 for n in after.values())  # owners with none are absent

    def test_one_paged_read_not_one_per_owner(self, crm: Crm) -> None:
        a, b = crm.owners()
        crm.seed_pipeline({a: {"open": crm.pipeline_page + 50}, b: {"open": 7}})
        crm.connector.list_owners()  # any login happens now, not inside the counted read
        before = crm.calls()
        counts = crm.connector.open_pipeline()
        total = sum(counts.values())
        assert counts[a] >= crm.pipeline_page + 50 and counts[b] >= 7
        assert crm.calls() - before <= math.ceil(total / crm.pipeline_page) + 1  # pages, whatever the owners


class DomainContract:
    """``recent_by_domain``: the CRM's recent leads (contacts) on company domains, newest first, batched."""

    def test_recent_records_on_each_domain_newest_first_within_the_window(self, crm: Crm) -> None:
        a, b = crm.owners()
        now = datetime.now(UTC).replace(microsecond=0)
        ten = crm.domain_record("ceo@domain-contract.com", a, now - timedelta(days=10))
        two = crm.domain_record("cto@domain-contract.com", b, now - timedelta(days=2))
        crm.domain_record("old@domain-contract.com", b, now - timedelta(days=40))
        other = crm.domain_record("x@other-contract.com", a, now - timedelta(days=1))
        crm.domain_record("y@gmail.com", a, now - timedelta(days=1))
        found = crm.connector.recent_by_domain(["domain-contract.com", "other-contract.com", "nobody-contract.com"],
                                               now - timedelta(days=30))
        assert set(found) == {"domain-contract.com", "other-contract.com"}
        assert [r.id for r in found["domain-contract.com"]] == [two, ten]
        first = found["domain-contract.com"][1]
        assert (first.owner_id, first.domain, first.created_at) == (a, "domain-contract.com", now - timedelta(days=10))
        assert [r.id for r in found["other-contract.com"]] == [other]

    def test_many_domains_cost_a_few_calls_not_one_per_domain(self, crm: Crm) -> None:
        crm.connector.list_owners()
        before = crm.calls()
        found = crm.connector.recent_by_domain([f"many-{i}-contract.com" for i in range(40)],
                                               datetime.now(UTC) - timedelta(days=30))
        assert found == {}
        assert crm.calls() - before == crm.domain_calls


class TransportContract:
    """A real connector over HTTP: the largest batches, built from the environment, no secret in any output.

    The test class needs ``sandbox`` and ``redis_client`` fixtures (the suite's) and a harness
    with the sandbox ``admin``.
    """

    def test_batches_are_the_largest_the_crm_allows(self, crm: Crm) -> None:
        size = crm.connector.write_batch_max
        ids = crm.generate(size * 2 + 1)
        owner, _ = crm.owners()
        results = crm.connector.write_owners([OwnerUpdate(i, owner, "bulk") for i in ids])
        assert all(r.ok for r in results)
        assert crm.writes("200") == 3  # 2 full batches and the remainder
        owners = crm.all_owners()
        assert all(owners[i] == owner for i in ids)

    def test_registry_builds_from_the_environment(self, crm: Crm, sandbox: Any, redis_client: object) -> None:
        conn = create_connector(crm.name, crm.connector.settings, env=sandbox.env())  # type: ignore[attr-defined]
        try:
            assert type(conn) is type(crm.connector)
            assert conn.list_owners()
        finally:
            conn.close()

    def test_no_secret_in_reprs_errors_or_logs(self, crm: Any, sandbox: Any) -> None:
        env = sandbox.env()
        secrets = [env["HUBSPOT_ACCESS_TOKEN"], env["SALESFORCE_CLIENT_SECRET"], env["SALESFORCE_PASSWORD"]]
        with structlog.testing.capture_logs() as logs:
            crm.connector.list_owners()
            crm.admin.script_fault("503", api=crm.name, count=1)
            crm.connector.list_owners()  # a retry is logged
            bad = {**env, "HUBSPOT_ACCESS_TOKEN": "pat-na1-wrong-token-1234",
                   "SALESFORCE_CLIENT_SECRET": "wrong-secret-1234"}
            wrong = create_connector(crm.name, crm.connector.settings, env=bad)
            with pytest.raises(Exception) as info:
                wrong.list_owners()
            wrong.close()
        text = " ".join([repr(crm.connector), repr(getattr(crm.connector, "credentials", "")), str(info.value),
                         repr(info.value), repr(logs)])
        assert logs
        for secret in [*secrets, "pat-na1-wrong-token-1234", "wrong-secret-1234"]:
            assert secret not in text
        assert "wrong-secret-1234" not in str(info.value.__context__ or "")
        assert MASK in str(info.value) or "refused" in str(info.value) or "401" in str(info.value)


class ConnectorContract(ReadContract, WriteContract, ChangesContract, OwnersContract, AccountContract, PipelineContract,
                        DomainContract, OutcomeContract, TransportContract):
    """The whole contract: what every real CRM connector keeps. Subclass it with a ``crm`` fixture."""

    connector_class: ClassVar[type[Connector]]

    def test_the_connector_is_the_one_registered_under_the_crm_name(self, crm: Crm) -> None:
        assert get_connector_class(crm.name) is self.connector_class is type(crm.connector)
        assert crm.connector.name == crm.name
