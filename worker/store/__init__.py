"""Shared state in Redis. The only package that knows Redis keys and scripts.

* :mod:`.redis_store`: routing state, idempotent decisions, SLA timers, the decision log, locks.
* :mod:`.pending`: the pending set of CRM record ids waiting to be routed.
* :mod:`.connection`: connecting to ``REDIS_URL``, or to an embedded server under ``./var/``.
* ``lua/``: the scripts that make claims, decisions and timer moves atomic.
"""
