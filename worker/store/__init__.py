"""Shared state in Redis. The only package that knows Redis keys and scripts.

* :mod:`.redis_store`: :class:`~.redis_store.RedisStore`, the one facade the rest of the worker
  uses; it combines the concerns below.
* :mod:`.keys`: every key layout, named once, under the configuration's prefix.
* :mod:`.routing_state`: loads and pool rotations, claims. :mod:`.decisions`: idempotent
  decisions, epochs, leases. :mod:`.log`: the decision log. :mod:`.outbox`: ledger events waiting
  for SQL (claimed under a lease, acknowledged after the commit). :mod:`.timers`: SLA timers, each
  rep's open clocks, once-marks. :mod:`.crm_state`: watermarks, last polls, written markers,
  open-lead holders. :mod:`.locks`: locks, first-seen marks. :mod:`.availability`: overrides.
* :mod:`.pending`: the pending set of CRM record ids waiting to be routed.
* :mod:`.connection`: connecting to ``REDIS_URL``, else to :mod:`.embedded`, the private server
  under ``./var/``; both build on :mod:`.client` (clients with the production settings).
* ``lua/``: the scripts that make claims, decisions and timer moves atomic.
"""
