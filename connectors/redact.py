"""Keep credentials out of logs, exception messages and reprs.

Connectors hold access tokens, session ids, client secrets and passwords. Each one is
registered here the moment it is read or issued (:func:`register_secret`), and every
message a connector emits passes through :func:`redact_text`, which replaces any
registered value, bearer tokens and ``key=value`` pairs whose key looks secret. The
structlog processor :func:`redact_event` applies the same rules to log events, so a token
cannot leak even through a library's error text we pass on.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "redact_event", "redact_mapping", "redact_text", "register_secret"]

MASK = "***"
_MIN_SECRET = 6  # shorter values would mask ordinary words
_MAX_SECRETS = 256

_lock = threading.Lock()
_secrets: dict[str, None] = {}  # insertion-ordered set, bounded
_pattern: re.Pattern[str] | None = None

_SECRET_KEY_RE = re.compile(
    r"(pass(word|wd)?|secret|token(?!s)|session_?id|authorization|api_?key|private_?key|assertion|credential|cookie|(^|_)sid($|_))",
    re.IGNORECASE,
)
_INLINE_RES = (
    re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9._~+/!=-]{8,}"),
    re.compile(
        r"(?i)([\"']?(?:access_token|refresh_token|client_secret|password|session_id|sessionId|"
        r"security_token|assertion|authorization)[\"']?\s*[:=]\s*[\"']?)([^\"'&,\s}]+)"
    ),
)


def register_secret(value: str | None) -> None:
    """Remember a credential so it is masked wherever it later appears."""
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


def redact_text(text: object) -> str:
    """``text`` with registered secrets, bearer tokens and ``secret=value`` pairs masked."""
    out = text if isinstance(text, str) else str(text)
    pattern = _pattern
    if pattern is not None:
        out = pattern.sub(MASK, out)
    out = _INLINE_RES[0].sub(lambda m: f"{m.group(1)} {MASK}", out)
    return _INLINE_RES[1].sub(lambda m: f"{m.group(1)}{MASK}", out)


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY_RE.search(key))


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with secret-looking keys masked and every string value scrubbed."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if is_secret_key(key) and value not in (None, ""):
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = redact_text(value)
        elif isinstance(value, Mapping):
            out[key] = redact_mapping(value)
        else:
            out[key] = value
    return out


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-looking keys and any registered secret in values."""
    for key, value in list(event_dict.items()):
        if is_secret_key(key) and value not in (None, ""):
            event_dict[key] = MASK
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
        elif isinstance(value, BaseException):
            event_dict[key] = redact_text(f"{type(value).__name__}: {value}")
        elif isinstance(value, Mapping):
            event_dict[key] = redact_mapping(value)
    return event_dict
