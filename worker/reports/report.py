"""``build_report``: every figure over one period, each pass over the ledger made once.

The passes are independent reads, so they run side by side on their own connections (two at
a time by default): on PostgreSQL each runs in its own server process, on SQLite the driver
lets go of the GIL while the database works. ``progress`` is told as each pass finishes, which
is what the CLI's progress bar shows.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime

from sqlalchemy import Engine

from worker.ledger.ledger import Ledger
from worker.reports import figures, passes
from worker.reports.model import Period, Report, ReportSettings
from worker.reports.pieces import Pass, Piece, gather
from worker.reports.sql import dimension

Progress = Callable[[int, int, str], None]  # (passes done, passes in all, what just finished)
SQLITE_MMAP = 1 << 30  # read the file through memory maps: a report reads a lot of pages once
PG_WORK_MEM = "256MB"


def build_report(
    source: Engine | Ledger,
    period: Period,
    by: str = "rule",
    settings: ReportSettings | None = None,
    *,
    progress: Progress | None = None,
    workers: int = 2,
    now: datetime | None = None,
    cache: bool = True,
) -> Report:
    """Every figure of the report for ``period``, grouped by ``by`` (rule, pool, rep, tier, source, config_version, arm).

    ``cache``: read the period's whole UTC days from the day cache where it is current, and keep
    what had to be read (:mod:`worker.reports.pieces`); False reads everything from ``events``
    and keeps nothing. Both give the same report.
    """
    dimension(by)  # an unknown grouping fails here, before any query
    settings = settings or ReportSettings()
    engine = source.engine if isinstance(source, Ledger) else source
    moment = now or datetime.now(UTC)
    jobs = passes.passes_for(by)
    done: dict[str, Piece] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="report") as pool:
        futures = {pool.submit(_run, engine, job, period, cache): name for name, job in jobs.items()}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if progress is not None:
                progress(len(done), len(jobs), futures[future])
    decisions, routing = passes.finish_first_routings(done["first routings"], by)
    acks = passes.finish_ack_waits(done["acknowledgements"], period, by, settings.tiers)
    moved = passes.finish_moves(done["moves"])
    rule_groups = decisions if by == "rule" else _by_rule(decisions)
    return Report(
        since=period.since, until=period.until, by=by, generated_at=moment, database=engine.dialect.name,
        leads=sum(d.leads for d in decisions),
        speed=figures.speed_to_lead(None, period, by, routing=routing, acks=acks),
        sla=figures.sla_compliance(None, period, settings.tiers, acks=acks,
                                   steps=passes.finish_sla_steps(done["SLA ladder"], period)),
        fairness=figures.fairness(None, period, settings.pools, decisions=decisions, moved=moved,
                                  skipped=passes.finish_skips(done["skips"], period, moment)),
        acceptance=figures.acceptance(None, period, decisions=decisions, moved=moved),
        outcomes=figures.outcomes(None, period, by, decisions=decisions,
                                  counts=passes.finish_outcome_counts(done["outcomes"])),
        coverage=figures.coverage(None, period, decisions=rule_groups,
                                  unreadable=passes.finish_unreadable_fields(done["unreadable fields"])),
    )


def _run(engine: Engine, job: Pass, period: Period, cache: bool) -> Piece:
    """One pass on its own connection; reading is rolled back, only the day cache's pieces are committed."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(f"PRAGMA mmap_size={SQLITE_MMAP}")
        else:
            # for this transaction only: sorts and hashes of a million rows in memory, not in temporary
            # files, and no JIT compilation, which costs more than it saves on queries this short
            connection.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
            connection.exec_driver_sql("SET LOCAL jit = off")
        return gather(connection, job, period, cache=cache)


def _by_rule(decisions: list[passes.DecisionGroup]) -> list[passes.DecisionGroup]:
    """The same groups keyed by rule, for coverage when the report is grouped another way."""
    return [passes.DecisionGroup(d.rule, d.rule, d.pool, d.owner, d.leads, d.first_at, d.last_at)
            for d in decisions]
