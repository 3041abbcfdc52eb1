"""What a report needs from the routing config: pool members with their weights, SLA tier windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.reports.model import ReportSettings, TierWindow

if TYPE_CHECKING:
    from worker.config import RoutingConfig


def settings_from_config(config: RoutingConfig) -> ReportSettings:
    """Pools (members in order, each with their ``weight``) and each SLA tier's ``acknowledge_within`` and clock."""
    pools = {name: {rep: config.reps[rep].weight if rep in config.reps else 1 for rep in pool.members}
             for name, pool in config.pools.items()}
    tiers = {}
    if config.sla is not None:
        for tier in config.sla.tiers:
            clock = "business_hours" if tier.clock.value == "business_hours" else "wall"
            tiers[tier.name] = TierWindow(tier.acknowledge_within.total_seconds(), clock)
    return ReportSettings(pools=pools, tiers=tiers)
