"""The report as one self-contained HTML file: Plotly charts with plotly.js inlined, and the key tables.

Everything the page needs is in the file (no CDN, no fonts, no MathJax), so it opens offline,
from an e-mail attachment or a laptop on a plane. The charts are SVG:

* speed-to-lead distributions (creation -> owner, owner -> first touch);
* SLA compliance over time, per tier;
* per-rep load against weight, per pool;
* conversion by path, with the Wilson 95% intervals as error bars.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from worker.reports.model import Bin, Report
from worker.reports.table import duration, percent

CHART_IDS = ("speed", "compliance", "load", "conversion")
_CONFIG = {"displaylogo": False, "responsive": True}
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .85rem; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.meta { color: #666; } .chart { min-height: 380px; }
"""


def _bin_label(b: Bin) -> str:
    return f"{duration(b.low) if b.low else '0'}-{duration(b.high)}" if b.high is not None else f">= {duration(b.low)}"


def speed_figure(report: Report) -> go.Figure:
    """How many leads waited how long: creation -> owner and owner -> first touch, on the same bins."""
    figure = go.Figure()
    for name, measure in (("creation -> owner", report.speed.to_owner), ("owner -> first touch", report.speed.to_ack)):
        figure.add_bar(name=name, x=[_bin_label(b) for b in measure.histogram], y=[b.count for b in measure.histogram])
    figure.update_layout(title="Speed to lead: distribution of waits (wall clock)", barmode="group",
                         xaxis_title="wait", yaxis_title="leads")
    return figure


def compliance_figure(report: Report) -> go.Figure:
    """Share of clocks acknowledged within the window, per tier, per day (or week)."""
    figure = go.Figure()
    tiers = sorted({p.tier for p in report.sla.timeline})
    for tier in tiers:
        points = [p for p in report.sla.timeline if p.tier == tier and p.share is not None]
        if points:
            figure.add_scatter(name=tier, mode="lines+markers", x=[p.start.isoformat() for p in points],
                               y=[p.share * 100 for p in points if p.share is not None])
    figure.update_layout(title=f"SLA compliance over time (per {report.sla.bucket})", yaxis_title="% within window",
                         yaxis_range=[0, 100], xaxis_title="clock started")
    return figure


def load_figure(report: Report) -> go.Figure:
    """Each pool member's net leads against what their weight entitles them to."""
    figure = go.Figure()
    names = [f"{p.pool} / {m.rep}" for p in report.fairness for m in p.members]
    figure.add_bar(name="net leads", x=names, y=[m.net for p in report.fairness for m in p.members])
    figure.add_scatter(name="weight's share", mode="markers", marker={"symbol": "line-ew-open", "size": 18},
                       x=names, y=[m.expected if m.expected is not None else 0 for p in report.fairness for m in p.members])
    figure.update_layout(title="Per-rep load against weight", yaxis_title="leads", xaxis_tickangle=-45)
    return figure


def conversion_figure(report: Report) -> go.Figure:
    """Conversion rate per group with its Wilson 95% interval as error bars."""
    rows = [r for r in report.outcomes.rows if r.conversion.value is not None]
    values = [r.conversion.value * 100 for r in rows if r.conversion.value is not None]
    figure = go.Figure()
    figure.add_bar(
        name="conversion", x=[r.key for r in rows], y=values,
        error_y={"type": "data", "symmetric": False,
                 "array": [((r.conversion.high or 0) - (r.conversion.value or 0)) * 100 for r in rows],
                 "arrayminus": [((r.conversion.value or 0) - (r.conversion.low or 0)) * 100 for r in rows]},
        customdata=[[r.conversion.k, r.leads] for r in rows],
        hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]} of %{customdata[1]})<extra></extra>",
    )
    figure.update_layout(title=f"Conversion by {report.outcomes.by} (Wilson 95% interval)", yaxis_title="% converted",
                         xaxis_tickangle=-45)
    return figure


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: Report) -> str:
    """The whole report as one HTML document; plotly.js is inlined once, before the first chart."""
    charts = {"speed": speed_figure(report), "compliance": compliance_figure(report), "load": load_figure(report),
              "conversion": conversion_figure(report)}
    parts: dict[str, str] = {}
    for i, (name, figure) in enumerate(charts.items()):
        figure.update_layout(template="plotly_white", height=420, margin={"t": 60, "b": 120})
        parts[name] = pio.to_html(figure, full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{name}",
                                  config=_CONFIG, include_mathjax=False)
    s = report.speed
    speed_rows = [(w.key, f"{w.wall.n:,}", duration(w.wall.p50), duration(w.wall.p90), duration(w.wall.p95),
                   duration(w.business.p50), duration(w.business.p90), duration(w.business.p95))
                  for w in (s.to_owner.overall, *s.to_owner.by_group)]
    ack_rows = [(w.key, f"{w.wall.n:,}", duration(w.wall.p50), duration(w.wall.p90), duration(w.wall.p95),
                 duration(w.business.p50), duration(w.business.p90), duration(w.business.p95))
                for w in (s.to_ack.overall, *s.to_ack.by_group)]
    wait_headers = (report.by, "n", "p50", "p90", "p95", "business p50", "business p90", "business p95")
    tiers = [(t.tier, duration(t.window_seconds), f"{t.clocks:,}", percent(t.within), t.breaches, t.escalations,
              t.reassignments, t.parks) for t in report.sla.tiers]
    outcomes = [(r.key, f"{r.leads:,}", percent(r.conversion), percent(r.opportunity), percent(r.win))
                for r in (report.outcomes.overall, *report.outcomes.rows)]
    accepted = [(r.rep, f"{r.received:,}", r.rerouted, r.reassigned, r.parked, r.rejected, percent(r.kept),
                 percent(r.rejection_rate)) for r in report.acceptance.reps]
    coverage = [(r.rule, f"{r.leads:,}", percent(None) if r.share is None else f"{r.share * 100:.1f}%", r.unreadable,
                 r.last_at.strftime("%Y-%m-%d %H:%M") if r.last_at else "-") for r in report.coverage.rules]
    title = (f"leadroute report: {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC, "
             f"by {report.by}")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{report.leads:,} leads first routed in the period; generated '
        f"{report.generated_at:%Y-%m-%d %H:%M} UTC from {html.escape(report.database)}.</p>",
        "<h2>Speed to lead</h2>", f'<div class="chart">{parts["speed"]}</div>',
        "<h3>Creation -> owner</h3>", _table(wait_headers, speed_rows),
        "<h3>Owner -> first touch</h3>", _table(wait_headers, ack_rows),
        "<h2>SLA compliance</h2>", f'<div class="chart">{parts["compliance"]}</div>',
        _table(("tier", "window", "clocks", "within [95% CI]", "breaches", "escalations", "reassignments", "parks"), tiers),
        "<h2>Fairness</h2>", f'<div class="chart">{parts["load"]}</div>',
        _table(("pool", "decisions", "max/min", "Gini"),
               [(p.pool, f"{p.decisions:,}", "-" if p.max_min is None else f"{p.max_min:.2f}",
                 "-" if p.gini is None else f"{p.gini:.3f}") for p in report.fairness]),
        "<h2>Acceptance</h2>",
        _table(("rep", "received", "rerouted", "reassigned", "parked", "rejected", "kept [95% CI]",
                "rejection rate [95% CI]"), accepted),
        "<h2>Outcomes</h2>", f'<div class="chart">{parts["conversion"]}</div>',
        _table((report.by, "leads", "converted [95% CI]", "opportunity [95% CI]", "won/closed [95% CI]"), outcomes),
        "<h2>Rule coverage</h2>",
        f"<p>Fallback: {html.escape(percent(report.coverage.fallback))} of {report.coverage.leads:,} leads.</p>",
        _table(("rule", "leads", "share", "unreadable", "last lead"), coverage),
        "</body></html>",
    ])
