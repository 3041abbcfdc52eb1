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
import re
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

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

MASK = "[REDACTED]"
FORMATS = ("json", "console")
ENV_FORMAT = "LEADROUTE_LOG_FORMAT"
ENV_LEVEL = "LEADROUTE_LOG_LEVEL"

# Libraries that are chatty at INFO/DEBUG: keep them at WARNING unless the level asked is DEBUG.
_NOISY = ("urllib3", "slack_sdk", "hubspot", "simple_salesforce", "kombu", "amqp", "asyncio", "mail.log")
# Loggers that install their own handlers; ours must be the only one, so they propagate to root.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.redirected")

# ------------------------------------------------------------------------------- redaction

_SECRET_KEY_RE = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|session_?id|authori[sz]ation|api[_-]?key|apikey|private[_-]?key|"
    r"credential|cookie|signature|assertion|(^|[_-])sid$|^x-api-key$|^dsn$",
    re.IGNORECASE,
)
# Key names that contain a secret-looking word but hold no secret (counts, ids of tokens...).
_NOT_SECRET_KEYS = frozenset({"token_type", "tokens", "signature_version", "expires_in"})

# Secret words that, as a whole segment of a snake/kebab/camel key, mark the value as secret.
_NAMES = (
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|token|api[_-]?key|hapikey|client[_-]?secret|secret|password|passwd|"
    r"pwd|session[_-]?id|sid|security[_-]?token|signature|sig|assertion|private[_-]?key|credentials?"
)
_KEY = rf"(?:[A-Za-z0-9]+[_.-])*(?:{_NAMES})(?:[_.-][A-Za-z0-9]+)*"
_VALUE = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"'&,;})\]]+"
_PAIR_RE = re.compile(rf"(?i)(?<![A-Za-z0-9_.-])({_KEY})([\"']?\s*[=:]\s*)({_VALUE})")
_AUTH_RE = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|digest|token|oauth|negotiate)\s+)?([^\s\"',;]+)"
)
_INLINE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9._~+/=!-]{6,}"), rf"\1 {MASK}"),
    # URL user info: scheme://user:password@host -> scheme://user:[REDACTED]@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):([^\s/@]+)@"), rf"\1:{MASK}@"),
    # Well-known token shapes, even without a key next to them.
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{8,}"), MASK),  # Slack
    (re.compile(r"\bpat-(?:na|eu|ap)\d-[0-9a-f-]{20,}"), MASK),  # HubSpot private app token
    (re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{20,}"), MASK),  # Salesforce session id
)


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group(3)
    if value.strip("\"'") == MASK:
        return match.group(0)
    quote = value[0] if value[:1] in ('"', "'") else ""
    return f"{match.group(1)}{match.group(2)}{quote}{MASK}{quote}"


def _mask_auth(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{MASK}"


_secrets_lock = threading.Lock()
_secret_values: dict[str, None] = {}
_secret_re: re.Pattern[str] | None = None
_MIN_SECRET = 6  # shorter literal values would mask ordinary words


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it later appears (e.g. a token read from the environment)."""
    global _secret_re
    if not value or len(value) < _MIN_SECRET:
        return
    with _secrets_lock:
        if value in _secret_values:
            return
        _secret_values[value] = None
        ordered = sorted(_secret_values, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(v) for v in ordered))


def _register_env_secrets(environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if is_secret_key(name):
            register_secret(value)


def is_secret_key(key: object) -> bool:
    """Whether a field or header name looks like it holds a credential."""
    if not isinstance(key, str) or key.lower() in _NOT_SECRET_KEYS:
        return False
    return bool(_SECRET_KEY_RE.search(key))


def redact_text(text: str) -> str:
    """``text`` with tokens, passwords, bearer credentials and URL passwords masked."""
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _AUTH_RE.sub(_mask_auth, text)
    for regex, repl in _INLINE:
        text = regex.sub(repl, text)
    return _PAIR_RE.sub(_mask_pair, text)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secret-keyed entries and secret-looking substrings masked."""
    if _depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else redact_value(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret keys (at any depth) and secrets inside string values."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (_record, _from_structlog)
        if is_secret_key(key) and value not in (None, ""):
            event_dict[key] = MASK
        elif isinstance(value, int | float | bool) or value is None:
            continue
        else:
            event_dict[key] = redact_value(value)
    return event_dict


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
    _register_env_secrets(os.environ)

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
