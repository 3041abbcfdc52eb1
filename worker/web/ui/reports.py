"""The dashboard's reports page: the report's charts for a window, its HTML file and the CSV exports.

The figures are the report's own (:mod:`worker.reports.html`), drawn in the page by the plotly.js
the web process serves from the Plotly package; the downloads are ``leadroute report --format
html`` and ``leadroute export ... --format csv`` for the same window.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import plotly.io as pio

from worker.cli.export import DATASETS, columns, csv_cell, rows
from worker.reports import Period, build_report, settings_from_config
from worker.reports.html import compliance_figure, conversion_figure, load_figure, render, speed_figure

if TYPE_CHECKING:
    from worker.app.runtime import Runtime

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
FIGURES = {"speed": speed_figure, "compliance": compliance_figure, "load": load_figure, "conversion": conversion_figure}


def period(since: str, now: datetime | None = None) -> Period:
    """The window ending now that ``since`` names (one of :data:`WINDOWS`)."""
    if since not in WINDOWS:
        raise ValueError(f"since: '{since}' is not one of {', '.join(WINDOWS)}")
    end = now or datetime.now(UTC)
    return Period(end - WINDOWS[since], end)


REUSE_SECONDS = 60.0  # a report built for a window serves that window's charts and downloads this long
_built: dict[tuple[int, str], tuple[float, Any]] = {}
_building = threading.Lock()


def _report(rt: Runtime, ledger: Any, since: str) -> Any:
    """The report for the window ending now, built at most once a minute per window (one build at a time:
    a second viewer waits for the first's and shares it)."""
    period(since)
    if ledger is None:
        return None
    key = (id(ledger), since)
    with _building:
        at, report = _built.get(key, (0.0, None))
        if report is None or time.monotonic() - at > REUSE_SECONDS:
            report = build_report(ledger, period(since), settings=settings_from_config(rt.config))
            _built[key] = (time.monotonic(), report)
        return report


_drawn: dict[int, tuple[Any, dict[str, Any]]] = {}  # the charts of each report still in use, by the report's id


def charts(rt: Runtime, ledger: Any, since: str) -> dict[str, Any]:
    """Each chart as Plotly JSON (data and layout) for the page's script, with the report's headline counts
    (made once per report built)."""
    report = _report(rt, ledger, since)
    if report is None:
        return {"charts": {}, "leads": None}
    with _building:
        drawn, made = _drawn.get(id(report), (None, None))
        if drawn is not report or made is None:  # (an id is reused once its report is gone)
            made = _charts(report)
            _drawn[id(report)] = (report, made)
            live = {id(r) for _, r in _built.values()}
            for stale in [k for k in _drawn if k not in live]:
                del _drawn[stale]
        return made


def _charts(report: Any) -> dict[str, Any]:
    out = {}
    for name, make in FIGURES.items():
        figure = make(report)
        figure.update_layout(template="plotly_white", height=360, margin={"t": 50, "b": 90, "l": 50, "r": 20})
        out[name] = json.loads(pio.to_json(figure, validate=False))
    return {"charts": out, "leads": report.leads, "since": report.since.isoformat(), "until": report.until.isoformat(),
            "text": f"{report.leads:,} lead(s) first routed from {report.since:%Y-%m-%d %H:%M} to "
                    f"{report.until:%Y-%m-%d %H:%M} UTC (built {report.generated_at:%H:%M:%S} UTC)."}


def html_file(rt: Runtime, ledger: Any, since: str) -> str:
    """The report as ``leadroute report --format html`` writes it, for the window."""
    report = _report(rt, ledger, since)
    if report is None:
        raise ValueError("there is no ledger yet (DATABASE_URL)")
    return render(report)


def csv_rows(ledger: Any, dataset: str, since: str) -> Iterator[str]:
    """``leadroute export DATASET --format csv`` for the window, streamed a few hundred rows at a time."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset: '{dataset}' is not one of {', '.join(DATASETS)}")
    window = period(since)
    if ledger is None:
        raise ValueError("there is no ledger yet (DATABASE_URL)")
    cols = columns(dataset)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([c.name for c in cols])
        for n, row in enumerate(rows(ledger.between(window.since, window.until, DATASETS[dataset]), cols), 1):
            writer.writerow([csv_cell(v) for v in row])
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return generate()
