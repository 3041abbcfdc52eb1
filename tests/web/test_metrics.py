"""Metrics: the recording helpers, the exposition, and aggregation across processes (multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from worker.observability import metrics

ROOT = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_helpers_record_into_the_named_series() -> None:
    before = value("leadroute_decisions_total", rule="emea", outcome="rep")
    metrics.record_decision("emea", "rep", 3)
    assert value("leadroute_decisions_total", rule="emea", outcome="rep") == before + 3

    before = value("leadroute_routing_latency_seconds_count", crm="hubspot")
    metrics.observe_routing_latency("hubspot", 0.42)
    metrics.observe_routing_latency("hubspot", -1)  # clock skew never makes a negative observation
    assert value("leadroute_routing_latency_seconds_count", crm="hubspot") == before + 2
    assert value("leadroute_routing_latency_seconds_bucket", crm="hubspot", le="0.05") >= 1

    metrics.set_pending_depth("salesforce", 12)
    assert value("leadroute_pending_depth", crm="salesforce") == 12

    before = value("leadroute_rate_limit_wait_seconds_total", connector="hubspot", reason="retry_after")
    metrics.rate_limit_wait("hubspot", 2.5, reason="retry_after")
    assert value("leadroute_rate_limit_wait_seconds_total", connector="hubspot", reason="retry_after") == before + 2.5

    before = value("leadroute_notifications_total", channel="slack", kind="assigned", status="sent")
    metrics.record_notification("slack", "assigned", "sent")
    assert value("leadroute_notifications_total", channel="slack", kind="assigned", status="sent") == before + 1

    before = value("leadroute_sla_actions_total", tier="1", action="escalate")
    metrics.record_sla_action("1", "escalate")
    assert value("leadroute_sla_actions_total", tier="1", action="escalate") == before + 1


def test_crm_call_times_the_call_and_records_status_or_error_class() -> None:
    labels = {"connector": "salesforce", "endpoint": "composite/sobjects"}
    with metrics.crm_call(**labels) as call:
        call["status"] = 200
    assert value("leadroute_crm_calls_total", **labels, status="200") >= 1
    with pytest.raises(TimeoutError), metrics.crm_call(**labels):
        raise TimeoutError
    assert value("leadroute_crm_calls_total", **labels, status="TimeoutError") >= 1
    assert value("leadroute_crm_call_seconds_count", **labels) >= 2


def test_render_is_prometheus_text_with_every_leadroute_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {
        "leadroute_routing_latency_seconds",
        "leadroute_decisions",
        "leadroute_crm_calls",
        "leadroute_pending_depth",
        "leadroute_rate_limit_waits",
        "leadroute_notifications",
        "leadroute_sla_actions",
        "leadroute_webhook_requests",
    } <= names


CHILD = textwrap.dedent(
    """
    import sys
    from worker.observability import metrics
    n = int(sys.argv[1])
    metrics.record_decision("emea", "rep", n)
    metrics.record_notification("email", "assigned", "sent")
    metrics.observe_routing_latency("salesforce", 0.3)
    metrics.set_pending_depth("salesforce", n)
    """
)
SCRAPE = "from worker.observability import metrics; import sys; sys.stdout.write(metrics.render()[0].decode())"


def run(code: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_multiprocess_mode_aggregates_samples_written_by_separate_processes(tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    (directory).mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale")  # left by a previous run
    assert metrics.prepare_multiproc_dir(directory) == directory
    assert not list(directory.glob("*.db"))

    env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
    run(CHILD, env, "2")  # e.g. one Celery prefork child
    run(CHILD, env, "5")  # another
    scraped = samples(run(SCRAPE, env))  # the web process serving /metrics
    assert scraped[("leadroute_decisions_total", (("outcome", "rep"), ("rule", "emea")))] == 7
    assert scraped[("leadroute_notifications_total", (("channel", "email"), ("kind", "assigned"), ("status", "sent")))] == 2
    assert scraped[("leadroute_routing_latency_seconds_count", (("crm", "salesforce"),))] == 2
    assert scraped[("leadroute_pending_depth", (("crm", "salesforce"),))] == 5  # the most recent measurement


def test_prepare_and_mark_dead_are_no_ops_without_multiprocess_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    assert metrics.prepare_multiproc_dir() is None
    assert not metrics.multiprocess_enabled()
    metrics.mark_process_dead(12345)
