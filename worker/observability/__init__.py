"""Structured logs (:mod:`.logs`) and Prometheus metrics (:mod:`.metrics`) for every process."""
