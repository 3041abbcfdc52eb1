"""``leadroute report`` in each format, on the hand-built history (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.reports.conftest import T0
from worker.cli import app
from worker.ledger.ledger import Ledger

SINCE, UNTIL = T0.date().isoformat(), "2026-03-03"


def run(*args: str, url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["report", "--since", SINCE, "--until", UNTIL, "--database-url", url,
                                      "--config", "config/routing.example.yaml", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def url(history: Ledger) -> str:
    return history.engine.url.render_as_string(hide_password=False)


def test_json_carries_every_figure(url: str) -> None:
    code, out, err = run("--format", "json", "--by", "source", url=url)
    assert code == 0, err
    data = json.loads(out)
    assert data["leads"] == 5 and data["by"] == "source"
    assert {"speed", "sla", "fairness", "acceptance", "outcomes", "coverage"} <= set(data)
    assert {r["key"] for r in data["outcomes"]["rows"]} == {"web", "event", "import"}


def test_the_table_fits_a_100_column_terminal(url: str) -> None:
    code, out, err = run(url=url)
    assert code == 0, err
    for title in ("Speed to lead: creation -> owner, by rule", "SLA compliance per tier", "Fairness: pool emea",
                  "Acceptance", "Manual overrides", "Outcomes by rule", "Rule coverage", "Unreadable fields"):
        assert title in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "\x1b[" not in err  # no progress bar when stderr is not a terminal


def test_html_is_one_file_with_plotly_inlined(url: str, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    code, _, err = run("--format", "html", "--out", str(target), url=url)
    assert code == 0, err
    page = target.read_text(encoding="utf-8")
    for chart in ("speed", "compliance", "load", "conversion"):
        assert f'id="chart-{chart}"' in page
    assert "<script src=" not in page.replace('<script src="data:', "")  # nothing loaded from elsewhere
    assert len(re.findall(r'Plotly\.newPlot\(\s*"chart-', page)) == 4  # plotly.js itself is in the page, once


def test_bad_options_and_a_missing_ledger_are_reported(url: str, tmp_path: Path) -> None:
    assert run("--by", "team", url=url)[0] == 2
    assert run("--format", "pdf", url=url)[0] == 2
    code, _, err = run(url=f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert code == 1 and "no ledger here" in err


def test_a_progress_bar_is_drawn_on_stderr_only_when_it_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    import worker.cli.report as command

    screen = io.StringIO()
    monkeypatch.setattr(command, "err", Console(file=screen, force_terminal=True, width=100))
    monkeypatch.setattr(command.sys.stderr, "isatty", lambda: True)
    with command._Progress() as tick:
        tick(3, 7, "acknowledgements")
    assert "reading the ledger" in screen.getvalue() and "3/7" in screen.getvalue()
    monkeypatch.setattr(command.sys.stderr, "isatty", lambda: False)
    with command._Progress() as tick:
        assert tick is None  # no terminal: nothing is drawn, and build_report is told no one is listening


def test_json_flag_is_the_json_format_as_every_read_command_takes_it(url: str) -> None:
    flag, by_format = run("--json", url=url), run("--format", "json", url=url)
    assert flag[0] == by_format[0] == 0, flag[2]
    unstamped = [{k: v for k, v in json.loads(out).items() if k != "generated_at"} for out in (flag[1], by_format[1])]
    assert unstamped[0] == unstamped[1]
