"""The cached pipeline counts (``least_loaded`` pools with ``load: {opportunities: ...}``): per CRM, with their age."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.routing.pipeline import PipelineCounts, PipelineLoad

READ = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


def test_counts_are_kept_per_crm_with_when_they_were_read(store) -> None:
    assert store.pipeline_counts(["salesforce", "hubspot"]) == {}
    store.save_pipeline("salesforce", {"tom": 7, "sarah": 0, "raj": 2}, READ)
    store.save_pipeline("hubspot", {"tom": 1}, READ + 60)
    assert store.pipeline_counts(["salesforce", "hubspot", "other"]) == {
        "salesforce": PipelineCounts("salesforce", {"tom": 7, "raj": 2}, READ),  # zeros are not kept
        "hubspot": PipelineCounts("hubspot", {"tom": 1}, READ + 60),
    }
    assert store.pipeline_counts([]) == {}


def test_a_refresh_replaces_the_counts_whole(store) -> None:
    store.save_pipeline("salesforce", {"tom": 7, "raj": 2}, READ)
    store.save_pipeline("salesforce", {"raj": 3}, READ + 300)
    assert store.pipeline_counts(["salesforce"])["salesforce"] == PipelineCounts("salesforce", {"raj": 3}, READ + 300)


def test_the_age_is_the_oldest_crms_and_stale_past_the_maximum(store) -> None:
    store.save_pipeline("salesforce", {"tom": 7}, READ)
    store.save_pipeline("hubspot", {"tom": 1}, READ + 600)
    load = PipelineLoad(store.pipeline_counts(["salesforce", "hubspot"]), max_age=1800)
    at = datetime.fromtimestamp(READ + 1800, UTC)
    assert (load.age(at), load.stale(at), load.note(at)) == (1800.0, False, "")
    later = datetime.fromtimestamp(READ + 1801, UTC)
    assert load.stale(later) and load.note(later) == "opps 30 min old, stale"
    assert load.opportunities("tom") == 8
