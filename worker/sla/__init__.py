"""SLA enforcement: tiers, business-hours clocks, the breach ladder and the sweep."""
