"""A replay's result (:meth:`worker.replay.compare.Comparison.to_dict`) as terminal tables or one HTML page.

The HTML page is self-contained like ``leadroute report --format html``: plotly.js inlined once,
no CDN, the report's style and table helper.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

CHART_IDS = ("reps", "pools")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def headline(result: Mapping[str, Any]) -> str:
    """``1,204 of 9,870 leads (12.2%) change: owner 1,204 (893 in the same rule and pool), rule 311, pool 97``."""
    c, r = result["changes"], result["replay"]
    return (f"{c['leads']:,} of {r['leads']:,} leads ({_pct(c['share'])}) change: owner {c['owner']:,} "
            f"({c['owner_only']:,} in the same rule and pool), rule {c['rule']:,}, pool {c['pool']:,}")


def fidelity_line(result: Mapping[str, Any]) -> str:
    f = result["fidelity"]
    if not f["compared"]:
        return "fidelity: no recorded decisions to compare with"
    return (f"fidelity: the baseline re-enacts {f['compared'] - f['owner_differs']:,} of {f['compared']:,} recorded owners "
            f"({_pct(f['owner_agreement'])}); {f['owner_differs']:,} owner(s) and {f['rule_differs']:,} rule(s) differ")


def print_table(result: Mapping[str, Any], out: Console) -> None:
    """The result as rich tables: headline, config diff, samples, volumes, fairness, fallback, exposure, fidelity."""
    r = result["replay"]
    out.print(f"[bold]Replay[/bold] of {r['leads']:,} leads first routed {r['since'] or 'from the start'} to "
              f"{r['until'] or 'now'} ({escape(r['source'])})")
    out.print(f"baseline {escape(r['baseline']['file'])} ({r['baseline']['version']}) -> candidate "
              f"{escape(r['candidate']['file'])} ({r['candidate']['version']})")
    out.print(f"[bold]{escape(headline(result))}[/bold]")
    out.print(escape(fidelity_line(result)))
    versions = result["fidelity"]["recorded_config_versions"]
    if versions and r["baseline"]["version"] not in versions:
        out.print(f"[yellow]note[/yellow]: the leads were routed under config version(s) {escape(', '.join(versions))}, "
                  f"not the baseline's {r['baseline']['version']}: the fidelity compares the baseline with another config")
    diff = result["config_diff"]
    out.print("[bold]Config diff[/bold]" + ("" if diff else ": no routing changes"))
    for change in diff:
        out.print(f"  - {escape(change['text'])}")
    for kind, samples in result["changes"]["samples"].items():
        if not samples:
            continue
        table = Table(title=f"Leads that change {kind} (first {len(samples)})", show_lines=True)
        for name in ("lead", "routed at", "before", "after"):
            table.add_column(name, overflow="fold")
        for s in samples:
            table.add_row(escape(s["lead"]), s["routed_at"][:16],
                          escape(f"{s['before']['owner']} / {s['before']['rule']}\n{s['before']['reason']}"),
                          escape(f"{s['after']['owner']} / {s['after']['rule']}\n{s['after']['reason']}"))
        out.print(table)
    for key, title in (("per_rep", "Leads per owner"), ("per_pool", "Leads per pool"), ("per_rule", "Leads per rule")):
        rows = result["volume"][key]
        if not rows:
            continue
        name = next(iter(rows[0]))
        table = Table(title=title)
        for column in (name, "before", "after", "change"):
            table.add_column(column, justify="left" if column == name else "right")
        for row in rows:
            table.add_row(escape(str(row[name])), f"{row['before']:,}", f"{row['after']:,}", f"{row['delta']:+,}")
        out.print(table)
    fairness = Table(title="Fairness per pool (leads got over leads expected)")
    for column in ("pool", "leads before", "Gini before", "max/min before", "leads after", "Gini after", "max/min after"):
        fairness.add_column(column, justify="left" if column == "pool" else "right")
    before, after = result["fairness"]["before"], result["fairness"]["after"]
    for pool in sorted(set(before) | set(after)):
        b, a = before.get(pool, {}), after.get(pool, {})
        fairness.add_row(escape(pool), f"{b.get('decisions', 0):,}", _num(b.get("gini"), 3), _num(b.get("max_min")),
                         f"{a.get('decisions', 0):,}", _num(a.get("gini"), 3), _num(a.get("max_min")))
    out.print(fairness)
    fb, ex = result["fallback"], result["sla_exposure"]
    out.print(f"fallback: {fb['before']['leads']:,} ({_pct(fb['before']['share'])}) -> {fb['after']['leads']:,} "
              f"({_pct(fb['after']['share'])})")
    un = result["unreadable"]
    fields = ", ".join(f"{k} {v:,}" for k, v in un["fields"].items())
    out.print(f"unreadable fields: {un['leads']:,} lead(s) ({_pct(un['share'])})" + (f": {escape(fields)}" if fields else ""))
    if result["unrecorded_fields"]:
        out.print(f"[yellow]not in the history[/yellow]: the candidate reads {escape(', '.join(result['unrecorded_fields']))}, "
                  "which the ledger never recorded; replayed as unknown")
    out.print(f"SLA exposure: outside the owner's hours {ex['before']['outside_hours']:,} -> {ex['after']['outside_hours']:,}; "
              f"on a rep over capacity {ex['before']['over_capacity']:,} -> {ex['after']['over_capacity']:,}; "
              f"a rep passed over at capacity {ex['before']['passed_over_at_capacity']:,} -> "
              f"{ex['after']['passed_over_at_capacity']:,}")
    for s in result["fidelity"]["samples"]:
        was, now = s["recorded"], s["replayed"]
        out.print(f"  recorded {escape(s['lead'])}: {escape(str(was['owner']))} by {escape(str(was['rule']))}; "
                  f"replayed {escape(now['owner'])} by {escape(now['rule'])}")


def _figures(result: Mapping[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go  # Plotly loads for --format html only

    figures = {}
    for key, name, title in (("per_rep", "owner", "Leads per owner, before and after"),
                             ("per_pool", "pool", "Leads per pool, before and after")):
        rows = result["volume"][key]
        figure = go.Figure()
        figure.add_bar(name="baseline", x=[r[name] for r in rows], y=[r["before"] for r in rows])
        figure.add_bar(name="candidate", x=[r[name] for r in rows], y=[r["after"] for r in rows])
        figure.update_layout(title=title, barmode="group", yaxis_title="leads", xaxis_tickangle=-45)
        figures["reps" if key == "per_rep" else "pools"] = figure
    return figures


def render_html(result: Mapping[str, Any]) -> str:
    """The whole result as one HTML document; plotly.js is inlined once, before the first chart."""
    import plotly.io as pio  # Plotly loads for --format html only

    from worker.reports.html import _CONFIG, _STYLE, _table  # the report's page style and table, for one look

    parts = {}
    for i, (name, figure) in enumerate(_figures(result).items()):
        figure.update_layout(template="plotly_white", height=420, margin={"t": 60, "b": 120})
        parts[name] = pio.to_html(figure, full_html=False, include_plotlyjs=(i == 0), div_id=f"chart-{name}",
                                  config=_CONFIG, include_mathjax=False)
    r, c = result["replay"], result["changes"]
    title = f"leadroute replay: {r['candidate']['file']} against {r['baseline']['file']}"
    samples = []
    for kind, rows in c["samples"].items():
        if rows:
            samples += [f"<h3>Leads that change {html.escape(kind)} (first {len(rows)})</h3>",
                        _table(("lead", "routed at", "before", "reason before", "after", "reason after"),
                               [(s["lead"], s["routed_at"][:16], f"{s['before']['owner']} / {s['before']['rule']}",
                                 s["before"]["reason"], f"{s['after']['owner']} / {s['after']['rule']}", s["after"]["reason"])
                                for s in rows])]
    before, after = result["fairness"]["before"], result["fairness"]["after"]
    fairness = [(p, before.get(p, {}).get("decisions", 0), _num(before.get(p, {}).get("gini"), 3),
                 _num(before.get(p, {}).get("max_min")), after.get(p, {}).get("decisions", 0),
                 _num(after.get(p, {}).get("gini"), 3), _num(after.get(p, {}).get("max_min")))
                for p in sorted(set(before) | set(after))]
    ex, fb, un = result["sla_exposure"], result["fallback"], result["unreadable"]
    exposure = [(label, f"{ex['before'][key]:,}", f"{ex['after'][key]:,}") for key, label in (
        ("outside_hours", "outside the owner's hours"), ("over_capacity", "on a rep over capacity"),
        ("passed_over_at_capacity", "a rep passed over at capacity"))]
    exposure.append(("to the fallback", f"{fb['before']['leads']:,} ({_pct(fb['before']['share'])})",
                     f"{fb['after']['leads']:,} ({_pct(fb['after']['share'])})"))
    diff = "".join(f"<li>{html.escape(ch['text'])}</li>" for ch in result["config_diff"]) or "<li>no routing changes</li>"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{r["leads"]:,} leads first routed {html.escape(str(r["since"] or "from the start"))} to '
        f"{html.escape(str(r['until'] or 'now'))}, from {html.escape(r['source'])}; baseline version "
        f"{html.escape(str(r['baseline']['version']))}, candidate {html.escape(str(r['candidate']['version']))}.</p>",
        f'<p id="headline"><strong>{html.escape(headline(result))}</strong></p>',
        f"<p>{html.escape(fidelity_line(result))}</p>",
        "<h2>Config diff</h2>", f'<ul id="config-diff">{diff}</ul>',
        "<h2>Changes</h2>", *samples,
        "<h2>Volume</h2>", f'<div class="chart">{parts["reps"]}</div>',
        _table(("owner", "before", "after", "change"),
               [(x["owner"], f"{x['before']:,}", f"{x['after']:,}", f"{x['delta']:+,}") for x in result["volume"]["per_rep"]]),
        f'<div class="chart">{parts["pools"]}</div>',
        _table(("pool", "before", "after", "change"),
               [(x["pool"], f"{x['before']:,}", f"{x['after']:,}", f"{x['delta']:+,}") for x in result["volume"]["per_pool"]]),
        "<h2>Fairness</h2>",
        _table(("pool", "leads before", "Gini before", "max/min before", "leads after", "Gini after", "max/min after"),
               fairness),
        "<h2>SLA exposure and fallback</h2>", _table(("", "baseline", "candidate"), exposure),
        f"<p>Unreadable fields: {un['leads']:,} lead(s) ({_pct(un['share'])}): "
        f"{html.escape(', '.join(f'{k} {v:,}' for k, v in un['fields'].items()) or 'none')}.</p>",
        "</body></html>",
    ])
