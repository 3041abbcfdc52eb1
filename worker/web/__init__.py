"""The ``web`` process: CRM webhook receivers, ``/healthz`` and ``/metrics``.

:mod:`.receivers` is the Starlette app with its dependencies passed in; :mod:`.server` wires it
to the store and Celery for ``leadroute web``.
"""
