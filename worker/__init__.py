"""leadroute's worker: everything between a new lead in the CRM and its owner being told.

The packages are the layers, innermost first; each imports only from those above it:

* :mod:`worker.domain`: value types (which lead, which decision) and lead normalisation. Pure.
* :mod:`worker.config`: the routing YAML, validated, with errors that name a line. Pure.
* :mod:`worker.routing`: the routing engine: lead + team + rules -> one owner and why. Pure.
* :mod:`worker.sla`: SLA tiers, work calendars and the breach ladder as decisions. Pure.
* :mod:`worker.notify`: messages and the channels (Slack, email, webhook) that carry them.
* :mod:`worker.store`: Redis: the only code that knows its keys and scripts; the embedded server.
* :mod:`worker.ledger`: the durable history (SQL): every decision, SLA event and outcome.
* :mod:`worker.observability`: structured logs and metrics (secrets redacted through :mod:`connectors.redact`).
* :mod:`worker.steps`: what the worker does, as plain functions with their collaborators passed
  in: poll and route a batch, what follows a write, the SLA sweep.
* :mod:`worker.app`: the Celery wiring: the app, thin tasks, and the per-process runtime.
* :mod:`worker.web`, :mod:`worker.cli`: the ``web`` process and the ``leadroute`` command.
* :mod:`worker.devtools`: the demo, the synthetic lead feeder and the process supervisor.

CRM connectors live beside, in :mod:`connectors`, and know nothing of this package.
See ``docs/architecture.md`` for the processes, queues and data flow.
"""
