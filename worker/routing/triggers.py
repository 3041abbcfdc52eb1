"""Hand-off triggers' conditions over a lead (pure): which of the config's ``triggers`` hold for it now."""

from __future__ import annotations

from typing import Any

from worker.config import RoutingConfig
from worker.domain.normalize import NormalizedLead
from worker.routing.engine import derive_facts


def truths(config: RoutingConfig, lead: NormalizedLead) -> dict[str, bool]:
    """Each trigger's condition on the lead, by trigger name (empty without triggers)."""
    if not config.triggers:
        return {}
    facts = derive_facts(lead, config)
    return {name: bool(t.condition.test(facts)) for name, t in config.triggers.items()}


def takes(trigger_config: Any, lead: NormalizedLead) -> bool:
    """Whether any of a trigger's rules (its view of the config) matches the lead; if none does it stays put."""
    facts = derive_facts(lead, trigger_config)
    return any(test.test(facts) for test in trigger_config.compiled_rules)
