"""The one registry of secrets, and the rules that keep credentials out of every line we write.

Connectors hold access tokens, session ids, client secrets and passwords; the worker holds
Slack tokens, SMTP passwords and webhook secrets. Each is registered here the moment it is
read or issued (:func:`register_secret`), from whichever side, and every message passes
through :func:`redact_text`, which masks any registered value, ``Authorization`` headers,
bearer credentials, URL passwords, well-known token shapes and ``key=value`` /
``"key": "value"`` pairs whose key looks secret (:func:`is_secret_key`). The structlog
processor :func:`redact_event` applies the same rules to log events, at any depth.

This module lives with the connectors because they import nothing from ``worker/``;
:mod:`worker.observability.logs` uses it as is, so a secret registered through either entry
point is masked by both, and both agree on which keys are secret.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = [
    "MASK",
    "is_secret_key",
    "redact_event",
    "redact_mapping",
    "redact_text",
    "redact_value",
    "register_env_secrets",
    "register_secret",
]

MASK = "[REDACTED]"
_MIN_SECRET = 6  # shorter literal values would mask ordinary words
_MAX_SECRETS = 1024  # session ids and JWT assertions are issued again and again: keep the newest

# ------------------------------------------------------------------------------- secret keys

# A key is secret when it contains one of these words (``X-HubSpot-Signature-v3``,
# ``client_secret``, ``SMTP_PASSWORD``...), or is ``sid`` / ``dsn`` as a whole segment.
_SECRET_KEY_RE = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|session_?id|authori[sz]ation|api[_-]?key|apikey|private[_-]?key|"
    r"credential|cookie|signature|assertion|(^|[_-])sid($|[_-])|(^|[_-])dsn$",
    re.IGNORECASE,
)
# Key names that contain a secret-looking word but hold no secret (counts, kinds, versions).
_NOT_SECRET_KEYS = frozenset({"token_type", "tokens", "signature_version", "expires_in"})


def is_secret_key(key: object) -> bool:
    """Whether a field, header or environment variable name looks like it holds a credential."""
    if not isinstance(key, str) or key.lower() in _NOT_SECRET_KEYS:
        return False
    return bool(_SECRET_KEY_RE.search(key))


# ------------------------------------------------------------------------------- patterns in text

# Secret words that, as a whole segment of a snake/kebab/camel key, mark the value as secret.
_NAMES = (
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|token|api[_-]?key|hapikey|client[_-]?secret|secret|password|passwd|"
    r"pwd|session[_-]?id|sid|security[_-]?token|signature|sig|assertion|private[_-]?key|credentials?|dsn"
)
_KEY = rf"(?:[A-Za-z0-9]+[_.-])*(?:{_NAMES})(?:[_.-][A-Za-z0-9]+)*"
# An already masked value is read whole, so redacting twice changes nothing.
_VALUE = rf"{re.escape(MASK)}|\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"'&,;}})\]]+"
_PAIR_RE = re.compile(rf"(?i)(?<![A-Za-z0-9_.-])({_KEY})([\"']?\s*[=:]\s*)({_VALUE})")
_AUTH_RE = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|digest|token|oauth|negotiate)\s+)?"
    rf"({re.escape(MASK)}|[^\s\"',;]+)"
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
    if value.strip("\"'") == MASK or match.group(1).lower() in _NOT_SECRET_KEYS:
        return match.group(0)
    quote = value[0] if value[:1] in ('"', "'") else ""
    return f"{match.group(1)}{match.group(2)}{quote}{MASK}{quote}"


def _mask_auth(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{MASK}"


# ------------------------------------------------------------------------------- the registry

_lock = threading.Lock()
_secrets: dict[str, None] = {}  # insertion-ordered set, bounded
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it later appears (a token read from the environment, a
    session id just issued). Values shorter than six characters are ignored."""
    global _pattern
    if not value or len(value) < _MIN_SECRET:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets[value] = None
        while len(_secrets) > _MAX_SECRETS:
            _secrets.pop(next(iter(_secrets)))
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_env_secrets(environ: Mapping[str, str]) -> None:
    """Register the value of every variable whose name looks secret (``SLACK_BOT_TOKEN``...)."""
    for name, value in environ.items():
        if is_secret_key(name):
            register_secret(value)


# ------------------------------------------------------------------------------- redaction


def redact_text(text: object) -> str:
    """``text`` (or its ``str``) with registered secrets, credentials and secret pairs masked."""
    out = text if isinstance(text, str) else str(text)
    pattern = _pattern
    if pattern is not None:
        out = pattern.sub(MASK, out)
    out = _AUTH_RE.sub(_mask_auth, out)
    for regex, repl in _INLINE:
        out = regex.sub(repl, out)
    return _PAIR_RE.sub(_mask_pair, out)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secret-keyed entries and secret-looking substrings masked."""
    if _depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else redact_value(v, _depth + 1))
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a mapping with secret-looking keys masked and every value scrubbed."""
    out: dict[str, Any] = redact_value(data)
    return out


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys (at any depth) and secrets inside values."""
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
