"""Structured logs for every leadroute process: JSON lines in production, pretty in a terminal.

Why one module: the worker, beat and web processes, and the libraries they use (celery,
urllib3, uvicorn, slack-sdk), must all write the same shape of line to the same stream,
with the same context (lead id, crm, task id, config version) and, above all, with
credentials masked. So :func:`configure_logging` installs one stdlib handler whose
formatter is structlog's ``ProcessorFormatter``: structlog loggers and plain ``logging``
loggers both end up in the same processor chain, and the last step before rendering is
:func:`redact`, which no line can bypass.

Context travels in contextvars, so it follows a task or a request without being passed
around::

    from worker.observability import logs
    log = logs.get_logger(__name__)
    with logs.bound(lead_id="00Q..", crm="salesforce", task_id=task.request.id):
        log.info("owner written", owner="rep-7")

Format: ``fmt="json"`` or ``"console"``; when not given, ``LEADROUTE_LOG_FORMAT`` decides,
else JSON unless stderr is a terminal. Celery must not install its own handlers: set
``worker_hijack_root_logger=False`` (or connect ``celery.signals.setup_logging``) and call
:func:`configure_logging` in the worker; run uvicorn with ``log_config=None``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# One registry of secrets and one set of rules for the whole product, kept in connectors.redact
# (the connectors import nothing from worker/): a secret registered there or here is masked
# everywhere. ``redact`` is its structlog processor, the last step before rendering.
from connectors.redact import (
    MASK,
    is_secret_key,
    redact_text,
    redact_value,
    register_env_secrets,
    register_secret,
)
from connectors.redact import redact_event as redact

__all__ = [
    "MASK",
    "bind",
    "bound",
    "configure_logging",
    "get_logger",
    "is_secret_key",
    "redact",
    "redact_text",
    "redact_value",
    "register_secret",
    "unbind",
]

FORMATS = ("json", "console")
ENV_FORMAT = "LEADROUTE_LOG_FORMAT"
ENV_LEVEL = "LEADROUTE_LOG_LEVEL"

# Libraries that are chatty at INFO/DEBUG: keep them at WARNING unless the level asked is DEBUG.
_NOISY = ("urllib3", "slack_sdk", "hubspot", "simple_salesforce", "kombu", "amqp", "asyncio", "mail.log")
# Loggers that install their own handlers; ours must be the only one, so they propagate to root.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.redirected")

# ------------------------------------------------------------------------------- context


def bind(**values: Any) -> None:
    """Bind context (lead_id, crm, task_id, config_version...) to every later line in this context."""
    structlog.contextvars.bind_contextvars(**values)


def unbind(*keys: str) -> None:
    """Drop keys bound with :func:`bind`."""
    structlog.contextvars.unbind_contextvars(*keys)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind context for the duration of a block (a task, a request), restoring the previous values."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger that goes through the configured handler (and so through redaction)."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name, **initial)
    return logger


# ------------------------------------------------------------------------------- configuration


def _choose_format(fmt: str | None, stream: TextIO) -> str:
    chosen = (fmt or os.environ.get(ENV_FORMAT) or "").strip().lower()
    if not chosen:
        isatty = getattr(stream, "isatty", None)
        chosen = "console" if callable(isatty) and isatty() else "json"
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r} is not one of {', '.join(FORMATS)} (set {ENV_FORMAT}=json or console)")
    return chosen


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return number


def _drop_color_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds a duplicate of the message with ANSI colours in ``color_message``.
    event_dict.pop("color_message", None)
    return event_dict


_LEADING = ("timestamp", "level", "event", "logger")


class _LeadrouteHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class so reconfiguration replaces our handler and leaves others (pytest's) alone."""


def configure_logging(level: str = "INFO", fmt: str | None = None, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one redacting handler on ``stream`` (stderr).

    Safe to call more than once (tests, a Celery ``setup_logging`` hook): the previous
    leadroute handler is replaced. Values of environment variables whose names look secret
    (``SLACK_BOT_TOKEN``, ``SMTP_PASSWORD``...) are masked wherever they appear.
    """
    out = stream if stream is not None else sys.stderr
    chosen = _choose_format(fmt, out)
    number = _level_number(level)
    register_env_secrets(os.environ)

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: Processor
    if chosen == "json":
        json_renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)

        def renderer(logger: WrappedLogger, method: str, event_dict: EventDict) -> Any:
            # Readers scan the same leading fields on every line: when, how bad, what, where.
            head = {k: event_dict.pop(k) for k in _LEADING if k in event_dict}
            return json_renderer(logger, method, {**head, **event_dict})

    else:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            # Tracebacks become text *before* redaction, so secrets in exception messages are masked.
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            redact,
            renderer,
        ],
    )
    handler = _LeadrouteHandler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LeadrouteHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    for name in _OWN_HANDLERS:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if number <= logging.DEBUG else max(number, logging.WARNING))
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.CallsiteParameterAdder(
                {structlog.processors.CallsiteParameter.MODULE, structlog.processors.CallsiteParameter.LINENO}
            )
            if number <= logging.DEBUG
            else _noop,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _noop(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    return event_dict


def configure_from_env(environ: MutableMapping[str, str] | None = None) -> None:
    """``configure_logging`` with ``LEADROUTE_LOG_LEVEL`` / ``LEADROUTE_LOG_FORMAT`` from the environment."""
    env = os.environ if environ is None else environ
    configure_logging(env.get(ENV_LEVEL, "INFO"), env.get(ENV_FORMAT) or None)
