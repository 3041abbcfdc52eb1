"""Every Redis key layout leadroute uses, named once.

A key is ``<prefix>:<root>:<parts...>``: the configuration's prefix (``LEADROUTE_PREFIX``,
default ``leadroute``; hash-tag it, e.g. ``{leadroute}``, on Redis Cluster), then one of
:data:`ROOTS`, then the parts that tell one instance from another. Only the store
(:mod:`worker.store`) builds keys, and only through :class:`Keys`, so a layout can be
read, changed or searched for in one place.

The strings are part of the data already in Redis: changing one is a data migration.
``tests/store/test_keys.py`` pins every layout byte for byte.
"""

from __future__ import annotations

from worker.domain.leads import DecisionKey, LeadRef

# root -> what lives there (documentation, and what the key-ownership test looks for)
STORE_ROOTS: dict[str, str] = {
    # routing state
    "loads": "hash rep -> open, unacknowledged leads",
    "pool": "hash per pool: round-robin sequence, last served, weighted scores",
    "domains": "hash company domain -> the last rep routed a lead from it; ``domains:at`` sorted set domain -> when",
    "caps": "counter per (scope, rep, period, window): leads counted against a cap per period, expiring after its window",
    # decisions
    "dec": "hash per (crm, object, lead, epoch): the decision, its log entry id, its journaled claims",
    "lease": "string per (crm, object, lead, epoch): the worker deciding it (owner token)",
    "epoch": "counter per (crm, object, lead): its routing epoch (re-routes)",
    "log": "stream: the decision log, capped",
    # the ledger's outbox
    "outbox": "stream of ledger events (JSON) waiting to be moved to SQL, never capped; ``outbox:dead`` those the ledger refused",
    # SLA timers and clocks
    "timers": "sorted set timer id -> due (epoch s); ``timers:payload`` hash timer id -> json",
    "sla": "``sla:rep:<rep>`` set of a rep's open clocks; ``sla:once:...`` marks of actions done",
    # intake and the CRM side
    "pending": "sorted set per crm of record ids to route; ``pending:<crm>:meta`` hash id -> json",
    "watermarks": "hash ``<connector>:<object>`` -> last processed change marker",
    "polled": "string per crm: when its last poll finished (epoch s)",
    "written": "flag per (crm, object, lead, epoch): its owner was written to the CRM",
    "open": "hash per crm: lead id -> rep holding it (load reconciliation)",
    "handoff": "hash per (crm, object, lead): each trigger's last-seen truth and fire count; ``handoff:<crm>`` hash "
               "lead id -> json of a hand-off (trigger or rejection by status) in progress",
    # coordination
    "lock": "string per lock name: the owner token",
    "seen": "flag per (namespace, id): first-seen de-duplication (webhook events)",
    "availability": "hash rep -> json availability override",
    "rates": "string: the learned rate table of performance_weighted pools (JSON, versioned)",
    "pipeline": "string per crm: open opportunities (deals) per rep and when they were read (JSON)",
    # recovery
    "state": "hash: the state marker (instance id, prefix, ledger, generation); missing = Redis lost its data",
}

# Built by the CRM connectors (package ``connectors``) under the prefix the worker hands them
# with its Redis connection (:meth:`worker.store.redis_store.RedisStore.for_connectors`).
CONNECTOR_ROOTS: dict[str, str] = {
    "ratelimit": "token buckets per CRM connection",
    "connectors": "per-connection caches (account owners by domain)",
}

ROOTS: frozenset[str] = frozenset(STORE_ROOTS) | frozenset(CONNECTOR_ROOTS)


def glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped (for SCAN MATCH)."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class Keys:
    """The key names of one configuration (one prefix)."""

    __slots__ = ("_loads", "_log", "_outbox", "_timer_payloads", "_timers", "prefix")

    def __init__(self, prefix: str) -> None:
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ValueError(f"invalid key prefix {prefix!r}")
        self.prefix = prefix
        self._loads = f"{prefix}:loads"
        self._log = f"{prefix}:log"
        self._timers = f"{prefix}:timers"
        self._timer_payloads = f"{prefix}:timers:payload"
        self._outbox = f"{prefix}:outbox"

    def key(self, *parts: object) -> str:
        """``<prefix>:<part>:<part>...``: the general form (tests and tools; the store names its layouts below)."""
        return ":".join((self.prefix, *(str(p) for p in parts)))

    def everything(self) -> str:
        """A SCAN pattern matching every key under this prefix."""
        return glob_escape(self.prefix) + ":*"

    # ------------------------------------------------------------------ routing state

    def loads(self) -> str:
        return self._loads

    def pool(self, pool: str) -> str:
        return f"{self.prefix}:pool:{pool}"

    def rates(self) -> str:
        return f"{self.prefix}:rates"

    def pipeline(self, crm: str) -> str:
        """Open opportunities per rep read from ``crm``, and when (``worker.store.pipeline``)."""
        return f"{self.prefix}:pipeline:{crm}"

    def domains(self) -> str:
        """Company domain -> ``<routed at ms>|<rep>|<lead id>`` of the latest decision that gave a rep a lead from it."""
        return f"{self.prefix}:domains"

    def domains_at(self) -> str:
        """The same domains by when (ms), to forget the oldest."""
        return f"{self.prefix}:domains:at"

    def cap(self, scope: str, rep: str, period: str, window: str) -> str:
        """A cap's counter: ``scope`` is ``rep`` for the rep's own caps, else ``pool.<name>`` (see ``worker.routing.caps``)."""
        return f"{self.prefix}:caps:{scope}:{rep}:{period}:{window}"

    # ------------------------------------------------------------------ decisions

    def decision(self, key: DecisionKey) -> str:
        return f"{self.prefix}:dec:{key.crm}:{key.object}:{key.lead_id}:{key.epoch}"

    def lease(self, key: DecisionKey) -> str:
        return f"{self.prefix}:lease:{key.crm}:{key.object}:{key.lead_id}:{key.epoch}"

    def epoch(self, lead: LeadRef) -> str:
        return f"{self.prefix}:epoch:{lead.crm}:{lead.object}:{lead.lead_id}"

    def log(self) -> str:
        return self._log

    # ------------------------------------------------------------------ the ledger's outbox

    def outbox(self) -> str:
        """The stream of ledger events not yet in SQL (consumer group ``ledger`` claims them)."""
        return self._outbox

    def outbox_dead(self) -> str:
        """The stream of outbox events the ledger refused as invalid, kept for a human to look at."""
        return f"{self.prefix}:outbox:dead"

    # ------------------------------------------------------------------ SLA timers and clocks

    def timers(self) -> str:
        return self._timers

    def timer_payloads(self) -> str:
        return self._timer_payloads

    def rep_timers(self, rep: str) -> str:
        """The set of a rep's open SLA clocks (timer ids)."""
        return f"{self.prefix}:sla:rep:{rep}"

    def every_rep_timers(self) -> str:
        """A SCAN pattern matching every rep's set of open clocks."""
        return glob_escape(self.prefix) + ":sla:rep:*"

    def done_mark(self, timer_id: str, epoch: int, tag: str) -> str:
        """The mark that an SLA action (``tag``) on a clock at an epoch was carried out."""
        return f"{self.prefix}:sla:once:{timer_id}:{epoch}:{tag}"

    # ------------------------------------------------------------------ intake and the CRM side

    def pending(self, crm: str) -> str:
        return f"{self.prefix}:pending:{crm}"

    def pending_meta(self, crm: str) -> str:
        return f"{self.prefix}:pending:{crm}:meta"

    def pending_holders(self, crm: str) -> str:
        """Which process holds which leased ids (hash: holder -> JSON of id -> lease)."""
        return f"{self.prefix}:pending:{crm}:holders"

    def watermarks(self) -> str:
        return f"{self.prefix}:watermarks"

    @staticmethod
    def watermark_field(connector: str, obj: str) -> str:
        """The field of :meth:`watermarks` for one connector's object."""
        return f"{connector}:{obj}"

    def polled(self, crm: str) -> str:
        return f"{self.prefix}:polled:{crm}"

    def written(self, key: DecisionKey) -> str:
        return f"{self.prefix}:written:{key.crm}:{key.object}:{key.lead_id}:{key.epoch}"

    def open_leads(self, crm: str) -> str:
        return f"{self.prefix}:open:{crm}"

    def crossings(self, lead: LeadRef) -> str:
        """Per trigger of one lead: ``<trigger>`` -> 0/1 (its condition when last seen), ``<trigger>#fired`` -> fires."""
        return f"{self.prefix}:handoff:{lead.crm}:{lead.object}:{lead.lead_id}"

    def handoffs(self, crm: str) -> str:
        """Hand-offs in progress: lead id -> json (what fired, the epoch once opened)."""
        return f"{self.prefix}:handoff:{crm}"

    # ------------------------------------------------------------------ coordination

    def lock(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def seen(self, namespace: str, item_id: str) -> str:
        return f"{self.prefix}:seen:{namespace}:{item_id}"

    def availability(self) -> str:
        return f"{self.prefix}:availability"

    # ------------------------------------------------------------------ recovery

    def state(self) -> str:
        """The state marker: written when the state is first used and by a rebuild (:mod:`.marker`)."""
        return f"{self.prefix}:state"
