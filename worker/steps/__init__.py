"""What the worker does, as plain functions that get their collaborators passed in.

* :mod:`.route`: poll a CRM into the pending set, route a batch (fetch, decide, write, record),
  re-route by hand, reconcile orphans and loads.
* :mod:`.after_route`: what follows a write: metrics, SLA clocks, the notifications to queue.
* :mod:`.sla_sweep`: the SLA service: start clocks, sweep due ones up their ladder, acknowledge.
* :mod:`.outcomes`: what became of routed leads in the CRM (converted, opportunity, won or lost),
  as ledger events.
* :mod:`.ledger`: the ledger events the other steps leave in the Redis outbox, and moving the
  outbox to SQL exactly once (claim, write, acknowledge).

Tasks, the CLI and the web process call these; the steps never import tasks: anything they
enqueue goes through the enqueuer the runtime passes in.
"""
