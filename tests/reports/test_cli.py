"""``leadroute report`` in each format, on the hand-built history (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.reports.conftest import PERIOD, T0
from worker.cli import app
from worker.ledger.ledger import Ledger
from worker.reports import ReportSettings, build_report

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


class RawReads:
    """Counts the statements that read the ``events`` table (not the day cache's tables) on any engine."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self) -> RawReads:
        from sqlalchemy import Engine, event

        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import Engine, event

        event.remove(Engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if re.search(r"\bFROM events\b", statement):
            self.statements.append(statement)


def test_a_second_report_reads_whole_days_from_the_cache_whatever_its_config(
        history: Ledger, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The acknowledgements' pieces keep every wait and the SLA windows are applied afterwards, so a
    report with no config (``db warm`` with one, the CLI without, or the reverse) reads no event of a
    whole day the cache holds, and says the same as one read from ``events``."""
    monkeypatch.setenv("LEADROUTE_CONFIG", "/nonexistent/routing.yaml")
    code, warmed, err = run("--format", "json", url=url)  # with the example config: the day read and kept
    assert code == 0, err
    with RawReads() as reads:
        result = CliRunner().invoke(app, ["report", "--since", SINCE, "--until", UNTIL, "--database-url", url,
                                          "--format", "json"])
        assert result.exit_code == 0, result.stderr
        again = run("--format", "json", url=url)
    assert reads.statements == []

    def unstamped(text: str) -> dict[str, object]:
        return {k: v for k, v in json.loads(text).items() if k != "generated_at"}

    direct = build_report(history, PERIOD, settings=ReportSettings(), cache=False).to_dict()
    assert unstamped(result.stdout) == unstamped(json.dumps(direct, ensure_ascii=False))
    assert unstamped(again[1]) == unstamped(warmed)
    assert unstamped(result.stdout)["sla"] != unstamped(warmed)["sla"]  # no windows: "within" unknown


def test_a_bad_config_fails_with_its_errors_and_no_report(url: str, tmp_path: Path) -> None:
    """A config that does not load ends the command with its errors and exit 1, and nothing on stdout (the
    config schema loads inside the command now, no longer with the CLI)."""
    bad = tmp_path / "routing.yaml"
    bad.write_text(Path("config/routing.example.yaml").read_text().replace("assign: {pool: smb}", "assign: {pool: smbb}", 1))
    result = CliRunner().invoke(app, ["report", "--since", SINCE, "--until", UNTIL, "--database-url", url,
                                      "--config", str(bad), "--format", "json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "smbb" in result.stderr
