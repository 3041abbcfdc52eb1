"""``leadroute report --by arm``: arms compared on speed to lead, SLA compliance and conversion, with a verdict.

A hand-built ledger (SQLite and PostgreSQL) of one experiment, ``inbound``: 20 leads in
``control`` (4 converted) and 20 in ``vertical`` (12 converted), worked out by hand below.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from tests.ledger.conftest import postgres  # noqa: F401  (the session's throwaway PostgreSQL)
from worker.cli import app
from worker.devtools.postgres import PostgresServer
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.reports import Period
from worker.reports.arms import compare, compare_arms, leads_per_arm, median_interval, newcombe

T0 = datetime(2026, 3, 2, tzinfo=UTC)
PERIOD = Period(T0, T0 + timedelta(days=1))


def ev(kind: str, lead: str, at: datetime, epoch: int = 0, **fields: object) -> LedgerEvent:
    return LedgerEvent(event_id=f"{kind}/salesforce/Lead/{lead}/{epoch}", kind=kind, crm="salesforce", object="Lead",
                       lead_id=lead, at=at, epoch=epoch, **fields)  # type: ignore[arg-type]


def history() -> list[LedgerEvent]:
    out = []
    for arm, converted, breached, touch in (("control", 4, 5, 600.0), ("vertical", 12, 1, 120.0)):
        for i in range(20):
            lead = f"{arm}-{i}"
            created = T0 + timedelta(minutes=10 * i)
            routed = created + timedelta(seconds=5)
            out.append(ev("decision", lead, routed, owner="ana", rule="inbound" if i else "fallback", arm=arm,
                          lead_created_at=created, wait_seconds=5.0, data={"experiment": "inbound"}))
            out.append(ev("sla.start", lead, routed, owner="ana", tier="hot"))
            if i < breached:
                out.append(ev("sla.breach", lead, routed + timedelta(minutes=15), owner="ana", tier="hot", wait_seconds=900.0))
            if i < 18:  # two per arm never touched
                out.append(ev("ack", lead, created + timedelta(seconds=touch + i), owner="ana", tier="hot",
                              wait_seconds=touch + i - 5))
            if i < converted:
                out.append(ev("outcome", lead, T0 + timedelta(days=5), status="converted"))
    out.append(ev("decision", "plain", T0, owner="tom", rule="other", data={}))  # no arm: not in the comparison
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"a_{uuid4().hex[:12]}")
    opened = Ledger.open(url)
    opened.write(history())
    yield opened
    opened.close()


def test_newcombe_hybrid_interval_matches_the_paper() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    d, low, high = newcombe(56, 70, 48, 80)  # type: ignore[misc]
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)


def test_leads_per_arm_is_the_two_proportion_sample_size() -> None:
    p1, p2 = 0.141, 0.161
    z = NormalDist().inv_cdf
    by_hand = (z(0.975) * math.sqrt(2 * 0.151 * 0.849) + z(0.8) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / 0.02 ** 2
    assert leads_per_arm(0.141) == math.ceil(by_hand)
    assert 4_900 < leads_per_arm(0.141) < 5_300


def test_median_interval_uses_order_statistics() -> None:
    values = list(range(1, 101))  # n = 100: ranks 50 -+ 9.8 -> the 40th and 61st values (0-based 39 and 60)
    assert median_interval(values) == (40, 61)


def test_the_arms_compared(ledger: Ledger) -> None:
    report = compare_arms(ledger.engine, PERIOD)
    (exp,) = report.experiments
    assert exp.experiment == "inbound"
    control, vertical = exp.arms
    assert (control.arm, control.leads, control.conversion.k) == ("control", 20, 4)
    assert (vertical.arm, vertical.leads, vertical.conversion.k) == ("vertical", 20, 12)
    assert (control.sla.k, control.sla.n, vertical.sla.k) == (15, 20, 19)
    assert (control.speed_to_lead.timed, control.speed_to_lead.untimed) == (18, 2)
    assert control.speed_to_lead.p50 == pytest.approx(608.5)  # 600 + i for i in 0..17: the median of 600..617
    assert vertical.speed_to_lead.p50 == pytest.approx(128.5)
    conversion = next(d for d in exp.differences if d.measure == "conversion")
    d, low, high = newcombe(12, 20, 4, 20)  # type: ignore[misc]
    assert (conversion.points, conversion.low, conversion.high) == (pytest.approx(d), pytest.approx(low), pytest.approx(high))
    assert conversion.significant
    assert exp.verdicts[0] == (f"vertical converts 60.0% vs 20.0% (difference 40.0 pts, 95% CI {low * 100:.1f} to "
                               f"{high * 100:.1f}; n = 20 / 20)")
    assert any(v.startswith("vertical reaches first touch faster: median 2m08s vs 10m08s") for v in exp.verdicts)


def test_too_few_leads_says_how_many_more_are_needed() -> None:
    from worker.reports.arms import ArmFigures, Median, rate  # the figures, built by hand

    def arm(name: str, k: int, n: int) -> ArmFigures:
        return ArmFigures(name, n, Median(0, n, None, None, None, None), rate(n, n), rate(k, n))

    diff = compare("conversion", arm("vertical", 150, 812), arm("control", 120, 797))
    needed = leads_per_arm(120 / 797)
    assert not diff.significant and diff.needed_per_arm == needed
    assert diff.verdict.startswith(f"not enough data yet: about {needed - 797:,} more leads per arm needed to detect a "
                                   f"2-pt difference ({needed:,} per arm for 80% power at 5%, two-sided;")


def test_report_by_arm_on_the_command_line(ledger: Ledger) -> None:
    url = ledger.engine.url.render_as_string(hide_password=False)
    base = ["report", "--since", "2026-03-02", "--until", "2026-03-03", "--database-url", url, "--by", "arm",
            "--config", "config/routing.example.yaml"]
    result = CliRunner().invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["by"] == "arm" and [a["arm"] for a in data["arms"]["experiments"][0]["arms"]] == ["control", "vertical"]
    table = CliRunner().invoke(app, base)
    assert table.exit_code == 0, table.stderr
    assert "A/B arms of rule inbound" in table.stdout and "vertical converts 60.0% vs 20.0%" in table.stdout
