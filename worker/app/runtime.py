"""Everything a worker process needs, built once from the environment.

Tasks, the web process and the CLI all get their config, store, connectors, notifier, ledger
and enqueuer here, so there is one place that reads ``LEADROUTE_CONFIG``, ``REDIS_URL``,
``LEADROUTE_PREFIX`` and ``DATABASE_URL``; the steps get the runtime passed in and never build
their own.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from connectors import domains
from connectors.base import Connector, create_connector, get_connector_class
from connectors.settings import ConnectorsConfig
from worker.app.enqueue import CeleryEnqueuer
from worker.config import RoutingConfig, config_path, load_config
from worker.notify.channels import Notifier
from worker.sla import calendar
from worker.sla.settings import connectors_with_signals
from worker.steps import liveness
from worker.steps.enqueue import Enqueuer
from worker.steps.rebuild import ledger_fingerprint
from worker.steps.route import DECISION_LEASE_SECONDS
from worker.steps.shadow import Shadow, load_shadow
from worker.steps.sla_sweep import Notice, SlaService
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore

if TYPE_CHECKING:
    from worker.ledger.ledger import Ledger

log = structlog.get_logger("leadroute.runtime")


@dataclass
class Runtime:
    """The config, the shared store and the CRM connectors of one process."""

    config: RoutingConfig
    store: RedisStore
    pending: PendingSet
    enqueue: Enqueuer = field(default_factory=CeleryEnqueuer)
    shadow: Shadow | None = None  # a candidate config decided beside the live one (worker.shadow), never acted on
    _connectors: dict[str, Connector] = field(default_factory=dict)
    _notifier: Notifier | None = None
    _sla: SlaService | None = None
    _ledger: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, config: RoutingConfig | None = None, store: RedisStore | None = None, *,
              shadow: bool = False) -> Runtime:
        """From the environment; raises ConfigError or RedisUnavailable with a one-line message.

        ``shadow``: also load the candidate config ``worker.shadow`` names, as the worker's processes do
        (:func:`get_runtime`); a CLI command has no use for it. A candidate that cannot be loaded is
        logged and left off, never raised.
        """
        config = config or load_config(config_path())
        prefix = os.environ.get("LEADROUTE_PREFIX") or "leadroute"
        store = store or RedisStore.connect(os.environ.get("REDIS_URL") or None, prefix=prefix,
                                            lease_seconds=DECISION_LEASE_SECONDS)
        store.name_leases(liveness.token, liveness.holder_gone)  # a dead drain's decision leases freed at once
        return cls(config, store, store.pending_set(), shadow=load_shadow(config, store) if shadow else None)

    @property
    def crms(self) -> list[str]:
        """Connectors enabled in the config, by registry name."""
        return list(self.config.model.connectors.enabled())

    def connector(self, crm: str) -> Connector:
        """The process's connector for ``crm`` (built on first use, shared rate limit in Redis)."""
        with self._lock:
            if crm not in self._connectors:
                settings = self._connector_settings().enabled().get(crm)
                self._connectors[crm] = create_connector(crm, settings, **self.store.for_connectors())
            return self._connectors[crm]

    @property
    def notifier(self) -> Notifier:
        """The enabled notification channels (secrets from the environment), built on first use."""
        with self._lock:
            if self._notifier is None:
                self._notifier = Notifier.from_config(self.config.model.notifications)
            return self._notifier

    @property
    def ledger(self) -> Ledger:
        """The ledger at ``DATABASE_URL`` (else ``./var/ledger.sqlite3``), migrated, opened on first use.

        Only the ledger task uses it: routing never waits on SQL. If the database cannot be
        reached this raises, and the next use tries again.
        """
        with self._lock:
            if self._ledger is None:
                self._ledger = open_ledger()
                save_configs(self._ledger, self.config, self.shadow.config if self.shadow is not None else None)
            return self._ledger

    def _connector_settings(self) -> ConnectorsConfig:
        """Connector settings with the SLA section's acknowledgement signals folded in."""
        sla = self.config.sla.settings if self.config.sla is not None else None
        return connectors_with_signals(self.config.model.connectors, sla)

    @property
    def sla(self) -> SlaService | None:
        """The SLA service (None when the config has no ``sla:`` section)."""
        if self.config.sla is None:
            return None
        if self._sla is None:
            crms = {crm: self.connector(crm) for crm in self.crms}
            self._sla = SlaService(self.store, self.config.sla, self.config, crms, notify=self._notify_sla)
        return self._sla

    def _notify_sla(self, notice: Notice) -> None:
        """SLA notices go out on the notify queue, like every other message."""
        self.enqueue.sla_notice(notice.to_dict())

    def object_name(self, crm: str) -> str:
        """The CRM object leads live in (``Lead``, ``Contact``, ``contacts``)."""
        settings = self.config.model.connectors.enabled().get(crm)
        return settings.object if settings is not None else "lead"

    def close(self) -> None:
        """Release connector sessions."""
        with self._lock:
            for conn in self._connectors.values():
                conn.close()
            self._connectors.clear()
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None


def open_ledger(migrate: bool = True) -> Ledger:
    """The ledger at ``DATABASE_URL`` (unset or empty: ``./var/ledger.sqlite3``), migrated unless told not to."""
    from worker.ledger.ledger import Ledger  # SQLAlchemy loads only in processes that use the ledger

    return Ledger.open(os.environ.get("DATABASE_URL") or None, migrate=migrate)


def save_configs(ledger: Ledger, *configs: RoutingConfig | None) -> bool:
    """Keep each config version's text in the ledger (once per version), for the dashboard's
    ``/ui/config/<version>``; False if one could not be saved. A failure is logged, never raised:
    no process stops for it."""
    saved = True
    for config in configs:
        if config is None or config.text is None:
            continue
        try:
            ledger.save_config(config.version_hash, config.text)  # silent: a CLI's --json stdout carries one object
        except Exception as exc:  # an unmigrated or unreachable ledger: the text is saved by the next process
            log.warning("config_not_saved", version=config.version_hash, error=str(exc)[:300])
            saved = False
    return saved


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


_preloaded: tuple[Path, RoutingConfig] | None = None


def get_runtime() -> Runtime:
    """The process-wide runtime (built on first use; Celery prefork children build their own)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            config = _preloaded[1] if _preloaded is not None and _preloaded[0] == config_path() else None
            _runtime = Runtime.build(config, shadow=True)  # the worker and web processes: shadow mode if configured
        return _runtime


def warm_up(config: RoutingConfig) -> None:
    """Do once in a prefork parent what every child would otherwise do on its first task:
    keep the parsed config, import the connectors, load the public-suffix list and the reps'
    holiday calendars, and read the ledger's URL as the state check before each drain does
    (it imports SQLAlchemy; nothing connects to SQL)."""
    global _preloaded
    _preloaded = (config_path(), config)
    ledger_fingerprint()
    domains.warm_up()
    for name in config.model.connectors.enabled():
        get_connector_class(name).warm_up()
    today = date.today()
    for rep in config.reps:
        country = calendar.calendar_for(rep, config).country
        for year in (today.year, today.year + 1):
            calendar.is_holiday(country, date(year, 1, 1))


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, ``leadroute demo``) or clear it."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
