"""The ledger's contract, held on both databases it runs on (each test runs on SQLite and PostgreSQL).

* Migrations build the schema from an empty database, exactly the table ``schema.py`` declares,
  and running them again, or twice at once, changes nothing.
* A batch is written once: the same batch again, or an event repeated inside a batch, adds
  nothing; an invalid event fails the batch before anything is stored.
* Reads: one lead's history in order; a period ``[since, until)`` by kind, streamed.
* Retention: ``prune(before)`` deletes exactly what happened before.
* What goes in comes out: every typed column, the JSON context, and times as UTC-aware datetimes.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import SAWarning

from tests.ledger.conftest import T0, EventFactory
from worker.ledger.database import create_ledger_engine, stamped_revision
from worker.ledger.events import InvalidEvent, LedgerEvent
from worker.ledger.ledger import _WRITTEN, Ledger, _values
from worker.ledger.migrate import current_revision, head_revision, upgrade
from worker.ledger.schema import COLUMNS, events, metadata


def same(stored: LedgerEvent, written: LedgerEvent) -> bool:
    """Equal as written: ``recorded_at`` is the ledger's to set."""
    return replace(stored, recorded_at=None) == written


# -- migrations ---------------------------------------------------------------------------------


def index_names(connection: Connection) -> set[str]:
    """The events table's indexes as the database lists them, expression indexes too."""
    if connection.dialect.name == "postgresql":
        query = "SELECT indexname FROM pg_indexes WHERE tablename = 'events'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
    return {row[0] for row in connection.exec_driver_sql(query)}


# SQLite cannot reflect an index on an expression (ix_events_kind_clock), so Alembic's comparison skips that one
# there and says so; PostgreSQL compares it.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index:UserWarning")
def test_migrations_build_the_declared_schema_from_an_empty_database(database_url: str) -> None:
    engine = create_ledger_engine(database_url)
    try:
        assert current_revision(engine) is None
        assert stamped_revision(engine) is None  # what `leadroute report` checks, without Alembic
        assert upgrade(engine) == head_revision()
        assert current_revision(engine) == head_revision() == stamped_revision(engine)
        inspector = inspect(engine)
        assert [c["name"] for c in inspector.get_columns("events")] == list(COLUMNS)
        with warnings.catch_warnings():  # SQLAlchemy reflects an expression index partly (SQLite) or not at all
            warnings.simplefilter("ignore", SAWarning)
            indexes = {ix["name"]: (ix["column_names"], bool(ix["unique"])) for ix in inspector.get_indexes("events")}
        indexes.pop("ix_events_kind_clock", None)
        assert indexes.pop("ix_events_first_routing_at") == (["at"], False)  # partial: first routings only
        assert indexes == {
            "uq_events_event_id": (["event_id"], True),
            "ix_events_lead": (["crm", "lead_id", "at"], False),
            "ix_events_kind_at": (["kind", "at"], False),
            "ix_events_at": (["at"], False),
            "ix_events_owner_at": (["owner", "at"], False),
            "ix_events_domain_at": (["domain", "at"], False),
        }
        with engine.connect() as connection:
            assert "ix_events_kind_clock" in index_names(connection)  # (kind, the clock's start): migration 0007
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SAWarning)
                assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        assert upgrade(engine) == head_revision()  # again: nothing to do
    finally:
        engine.dispose()


def test_a_routing_is_found_by_its_company_domain_written_now_or_before_migration_0004(database_url: str) -> None:
    def routed(n: int, domain: object) -> LedgerEvent:
        return LedgerEvent(event_id=f"decision/salesforce/Lead/{n}/0", kind="decision", crm="salesforce", object="Lead",
                           lead_id=str(n), at=T0 + timedelta(minutes=n), data={"facts": {"domain": domain}})

    engine = create_ledger_engine(database_url)
    try:
        upgrade(engine, "0003")
        before = [routed(1, "acme.io"), routed(2, None), routed(3, "")]
        columns = {c["name"] for c in inspect(engine).get_columns("events")}
        with engine.begin() as connection:
            connection.execute(events.insert(), [{k: v for k, v in zip(_WRITTEN, _values(e, T0, json=False), strict=True)
                                                  if k in columns} for e in before])
        upgrade(engine)
        ledger = Ledger(engine)
        ledger.write([routed(4, "acme.io"), routed(5, "other.io"),
                      LedgerEvent(event_id="ack/6", kind="ack", crm="salesforce", object="Lead", lead_id="6", at=T0)])
        with engine.connect() as connection:
            found = connection.execute(select(events.c.lead_id, events.c.domain).order_by(events.c.lead_id)).all()
        assert found == [("1", "acme.io"), ("2", None), ("3", None), ("4", "acme.io"), ("5", "other.io"), ("6", None)]
        assert ledger.for_lead("salesforce", "4")[0].data["facts"] == {"domain": "acme.io"}  # the event reads as written
    finally:
        engine.dispose()


def test_two_processes_starting_at_once_both_find_the_schema_migrated(database_url: str) -> None:
    engines = [create_ledger_engine(database_url) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def migrate(engine: object) -> None:
        start.wait()
        try:
            results.append(upgrade(engine))  # type: ignore[arg-type]
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert results == [head_revision()] * 2


# -- writing exactly once -----------------------------------------------------------------------


def test_a_batch_is_written_once_however_often_it_is_written(ledger: Ledger, event: EventFactory) -> None:
    batch = [event(n) for n in range(5)]
    assert ledger.write(batch) == 5
    first = {e.event_id: e.recorded_at for e in ledger.between()}
    assert ledger.write(batch) == 0
    assert ledger.write(reversed(batch)) == 0
    assert ledger.count() == 5
    assert {e.event_id: e.recorded_at for e in ledger.between()} == first  # the first write stands


def test_the_same_batch_written_by_two_workers_at_once_is_stored_once(ledger: Ledger, event: EventFactory) -> None:
    batch = [event(n) for n in range(300)]
    start = threading.Barrier(2)
    written: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        start.wait()
        try:
            written.append(ledger.write(batch))
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sum(written) == 300  # each event counted new by exactly one of them
    assert ledger.count() == 300


def test_a_replayed_batch_with_new_events_adds_only_the_new_ones(ledger: Ledger, event: EventFactory) -> None:
    ledger.write([event(n) for n in range(3)])
    assert ledger.write([event(n) for n in range(6)]) == 3
    assert sorted(e.lead_id for e in ledger.between()) == [event(n).lead_id for n in range(6)]


def test_an_event_repeated_inside_a_batch_is_stored_once_and_the_first_one_counts(
    ledger: Ledger, event: EventFactory,
) -> None:
    original = event(1, owner="mike")
    repeat = replace(original, owner="anna", data={"reason": "replayed"})
    assert ledger.write([original, event(2), repeat, original]) == 2
    (stored,) = ledger.for_lead("salesforce", original.lead_id)
    assert same(stored, original)


def test_events_and_dicts_of_their_fields_are_the_same_to_the_writer(ledger: Ledger, event: EventFactory) -> None:
    as_event = event(1)
    as_dict = event(2).to_dict()
    assert ledger.write([as_event, as_dict]) == 2
    assert ledger.write([as_event.to_dict(), event(2)]) == 0
    (stored,) = ledger.for_lead("salesforce", event(2).lead_id)
    assert same(stored, event(2))


def test_one_invalid_event_fails_the_batch_and_nothing_is_written(ledger: Ledger, event: EventFactory) -> None:
    bad = event(2).to_dict() | {"kind": "decison"}
    with pytest.raises(InvalidEvent, match="kind: 'decison'"):
        ledger.write([event(1), bad, event(3)])
    assert ledger.count() == 0


def test_an_empty_batch_writes_nothing(ledger: Ledger) -> None:
    assert ledger.write([]) == 0
    assert ledger.count() == 0


# -- reading ------------------------------------------------------------------------------------


def test_a_leads_history_is_its_events_only_oldest_first(ledger: Ledger, event: EventFactory) -> None:
    lead = event(1).lead_id
    history = [
        event(1),
        event(1, event_id="sla.start/1", kind="sla.start", at=T0 + timedelta(minutes=2), tier="hot"),
        event(1, event_id="sla.remind/1", kind="sla.remind", at=T0 + timedelta(minutes=7), tier="hot"),
        event(1, event_id="reroute/1", kind="reroute", epoch=1, at=T0 + timedelta(minutes=9), previous_owner="mike",
              owner="anna", actor="ops@example.com", data={"asked_by": "ops@example.com", "why": "wrong territory"}),
    ]
    others = [
        event(2),
        event(1, event_id="hubspot/1", crm="hubspot", object="contact"),  # same id, other CRM
        event(1, event_id="account/1", object="Account", at=T0 + timedelta(minutes=5)),  # same id, other object
    ]
    ledger.write([history[3], *others, history[1], history[0], history[2]])
    got = ledger.for_lead("salesforce", lead, object="Lead")
    assert [e.event_id for e in got] == [e.event_id for e in history]
    assert all(same(g, h) for g, h in zip(got, history, strict=True))
    assert [e.event_id for e in ledger.for_lead("salesforce", lead)] == [
        history[0].event_id, history[1].event_id, "account/1", history[2].event_id, history[3].event_id]
    assert ledger.for_lead("salesforce", "00Q-nobody") == []


def test_a_period_is_half_open_filtered_by_kind_and_in_time_order(ledger: Ledger, event: EventFactory) -> None:
    decisions = [event(n) for n in range(10)]  # at T0 + n minutes
    acks = [event(n, event_id=f"ack/{n}", kind="ack", at=T0 + timedelta(minutes=n, seconds=30)) for n in range(10)]
    ledger.write([*acks, *reversed(decisions)])
    since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)
    assert [e.event_id for e in ledger.between(since, until, kinds=["decision"])] == [
        d.event_id for d in decisions[3:6]]
    assert [e.kind for e in ledger.between(since, until)] == ["decision", "ack"] * 3
    assert [e.event_id for e in ledger.between(since, until, kinds=["decision", "ack"])] == [
        e.event_id for pair in zip(decisions[3:6], acks[3:6], strict=True) for e in pair]
    assert len(list(ledger.between(until=since))) == 6
    assert len(list(ledger.between(since=until))) == 8
    assert ledger.count(since, until, kinds=["ack"]) == 3
    assert ledger.count() == 20
    assert list(ledger.between(kinds=["outcome"])) == []


def test_a_period_streams_in_batches_and_an_abandoned_stream_frees_its_connection(
    ledger: Ledger, event: EventFactory,
) -> None:
    ledger.write([event(n) for n in range(25)])
    assert [e.lead_id for e in ledger.between(batch_size=4)] == [event(n).lead_id for n in range(25)]
    stream = ledger.between(batch_size=4)
    assert next(stream).lead_id == event(0).lead_id
    assert ledger.engine.pool.checkedout() == 1
    stream.close()
    assert ledger.engine.pool.checkedout() == 0
    assert ledger.write([event(25)]) == 1


def test_reading_a_period_refuses_naive_times_and_unknown_kinds(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        ledger.count(since=datetime(2026, 1, 1))
    with pytest.raises(InvalidEvent, match="decisions"):
        ledger.count(kinds=["decisions"])


def test_a_row_of_a_kind_this_version_does_not_know_still_reads(ledger: Ledger, event: EventFactory) -> None:
    ledger.write([event(1)])
    with ledger.engine.begin() as connection:
        connection.execute(text("UPDATE events SET kind = 'sla.snooze'"))
    (stored,) = ledger.for_lead("salesforce", event(1).lead_id)
    assert stored.kind == "sla.snooze"


# -- retention ----------------------------------------------------------------------------------


def test_prune_deletes_exactly_the_events_before_the_date(ledger: Ledger, event: EventFactory) -> None:
    ledger.write([event(n) for n in range(10)])
    cutoff = T0 + timedelta(minutes=7)
    assert ledger.count(until=cutoff) == 7
    assert ledger.prune(cutoff, batch_size=3) == 7  # in several chunks
    assert [e.lead_id for e in ledger.between()] == [event(n).lead_id for n in range(7, 10)]
    assert ledger.prune(cutoff) == 0
    assert ledger.prune(T0 + timedelta(days=1), batch_size=3) == 3  # an exact multiple of the chunk
    assert ledger.count() == 0


# -- what goes in comes out -----------------------------------------------------------------------


def test_every_field_round_trips(ledger: Ledger) -> None:
    full = LedgerEvent(
        event_id="outcome/salesforce/Lead/00Q1/won", kind="outcome", crm="salesforce", object="Lead", lead_id="00Q1",
        at=T0, epoch=3, config_version="3f9a1c2b7d4e", owner="anna", previous_owner="mike", actor="ops@example.com",
        rule="emea-enterprise", pool="emea", tier="hot", source="web-form", arm="b", status="won",
        wait_seconds=412.25, wait_business_seconds=118.5, amount=125000.75, currency="EUR",
        lead_created_at=T0 - timedelta(hours=30, microseconds=7), data={"opportunity": "006xx1", "stage": "Closed Won"},
    )
    ledger.write([full])
    (stored,) = ledger.for_lead("salesforce", "00Q1")
    assert same(stored, full)
    assert isinstance(stored.epoch, int) and isinstance(stored.amount, float)


def test_the_json_context_round_trips(ledger: Ledger, event: EventFactory) -> None:
    context = {
        "considered": ["mike", "anna", "jörg"],
        "skipped": {"anna": "ooo", "jörg": "at_capacity"},
        "facts": {"country": "DE", "employees": 4200, "score": 0.875, "enterprise": True, "region": None},
        "unreadable": [],
        "nested": {"deadlines": [{"rung": 0, "due": "2026-03-02T09:15:00+00:00"}], "big": 2**53},
        "reason": "emea-enterprise: DE, 4,200 employees -> pool emea (least loaded: mike 1/1) ✓",
        "notes": "line 1\nline 2\ttab \\N \\ backslash \"quoted\" 'single' \r",
        "empty": {},
    }
    ledger.write([event(1, data=context), event(2, data={})])
    assert ledger.for_lead("salesforce", event(1).lead_id)[0].data == context
    assert ledger.for_lead("salesforce", event(2).lead_id)[0].data == {}


def test_context_values_json_lacks_are_stored_as_their_plain_form(ledger: Ledger, event: EventFactory) -> None:
    due = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    ledger.write([event(1, data={"due": due, "reps": ("mike", "anna"), "langs": {"de", "en"}})])
    assert ledger.for_lead("salesforce", event(1).lead_id)[0].data == {
        "due": "2026-03-02T10:00:00+00:00", "reps": ["mike", "anna"], "langs": ["de", "en"]}


def test_typed_columns_keep_characters_a_bulk_load_must_escape(ledger: Ledger, event: EventFactory) -> None:
    awkward = "tab\there, new\nline, \\N, back\\slash, \"quote\", 'single', \\., ü"
    ledger.write([event(1, source=awkward, owner="queue:EMEA inbound", actor="")])
    (stored,) = ledger.for_lead("salesforce", event(1).lead_id)
    assert (stored.source, stored.owner, stored.actor) == (awkward, "queue:EMEA inbound", "")


def test_a_nul_character_from_a_crm_field_is_dropped_not_the_batch(ledger: Ledger, event: EventFactory) -> None:
    assert ledger.write([event(1, source="web\x00form", data={"company": "Acme\x00 GmbH", "k\x00": ["x\x00"]}),
                         event(2)]) == 2
    (stored,) = ledger.for_lead("salesforce", event(1).lead_id)
    assert stored.source == "webform"
    assert stored.data == {"company": "Acme GmbH", "k": ["x"]}


def test_times_are_stored_as_instants_and_read_back_in_utc(ledger: Ledger, event: EventFactory) -> None:
    berlin = timezone(timedelta(hours=2))
    at = datetime(2026, 6, 1, 11, 30, 15, 123456, tzinfo=berlin)
    before = datetime.now(UTC)
    ledger.write([event(1, at=at, lead_created_at="2026-06-01T08:00:00-01:00")])
    after = datetime.now(UTC)
    (stored,) = ledger.for_lead("salesforce", event(1).lead_id)
    assert stored.at == at and stored.at.utcoffset() == timedelta(0) and stored.at.tzinfo == UTC
    assert stored.at.isoformat() == "2026-06-01T09:30:15.123456+00:00"
    assert stored.lead_created_at == datetime(2026, 6, 1, 9, 0, tzinfo=UTC) and stored.lead_created_at.tzinfo == UTC
    assert stored.recorded_at is not None and stored.recorded_at.tzinfo == UTC
    assert before - timedelta(seconds=1) <= stored.recorded_at <= after + timedelta(seconds=1)
    # the period bounds compare instants, whatever zone they are given in
    assert ledger.count(since=datetime(2026, 6, 1, 9, 30, 15, 123456, tzinfo=UTC)) == 1
    assert ledger.count(until=datetime(2026, 6, 1, 11, 30, 15, 123457, tzinfo=berlin)) == 1
    assert ledger.count(until=at) == 0
