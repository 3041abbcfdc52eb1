"""The Celery wiring: the app and its queues (:mod:`.celery_app`), thin tasks (:mod:`.tasks`), and the
per-process :class:`~worker.app.runtime.Runtime` that builds the config, store, connectors and notifier
once and hands them to the steps.

Start a worker with ``celery -A worker.app.celery_app worker`` (see the ``Procfile``).
"""
