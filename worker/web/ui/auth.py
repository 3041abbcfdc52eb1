"""Who may see the dashboard and who may act on it: users, sessions, CSRF tokens and the login rate limit.

The dashboard can re-route leads, so it is off unless configured (``docs/dashboard.md``):

* ``LEADROUTE_UI_USERS="alice:operator:<argon2 hash>,bob:viewer:<argon2 hash>"``: users who log in
  with a password (``leadroute ui hash-password`` makes a hash);
* ``LEADROUTE_UI_TRUSTED_HEADER=X-Forwarded-User`` with ``LEADROUTE_UI_TRUSTED_PROXIES``: a reverse
  proxy that authenticated the user names them in that header, believed only from those addresses;
  ``LEADROUTE_UI_TRUSTED_OPERATORS`` lists who of them may act (everyone else views).

Either way ``LEADROUTE_UI_SECRET`` signs the session cookies and CSRF tokens. A session is a signed
(itsdangerous), HttpOnly, SameSite=Strict cookie named after ``LEADROUTE_PREFIX`` and signed with
it too, so a session of one configuration is worthless under another.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

ROLES = ("viewer", "operator")
ENV_USERS = "LEADROUTE_UI_USERS"
ENV_SECRET = "LEADROUTE_UI_SECRET"
ENV_HEADER = "LEADROUTE_UI_TRUSTED_HEADER"
ENV_PROXIES = "LEADROUTE_UI_TRUSTED_PROXIES"
ENV_OPERATORS = "LEADROUTE_UI_TRUSTED_OPERATORS"
ENV_SESSION_HOURS = "LEADROUTE_UI_SESSION_HOURS"
ENV_SECURE_COOKIE = "LEADROUTE_UI_SECURE_COOKIE"
MIN_SECRET = 16
_ENTRY_START = re.compile(r",\s*(?=[^\s:,]+:(?:viewer|operator):)")  # argon2 hashes have commas of their own
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_hex(8))  # verified against unknown names, so they take as long


class UiConfigError(ValueError):
    """The dashboard's settings are wrong: the message says which variable and what to do."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for ``LEADROUTE_UI_USERS``."""
    if not password:
        raise UiConfigError("the password is empty")
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (constant time; False on any malformed hash)."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard user: ``viewer`` sees everything, ``operator`` may also act."""

    name: str
    role: str
    password_hash: str = ""

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


def parse_users(value: str) -> dict[str, User]:
    """``name:role:hash,name:role:hash`` as users by name; UiConfigError naming the bad entry."""
    users: dict[str, User] = {}
    for raw in _ENTRY_START.split(value.strip()):
        entry = raw.strip()
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        role, _, hashed = rest.partition(":")
        if not name or role not in ROLES or not hashed:
            shown = f"{name}:{role}:..." if name else entry[:20]
            raise UiConfigError(f"{ENV_USERS}: '{shown}' is not name:role:hash with role viewer or operator")
        if not hashed.startswith("$argon2"):
            raise UiConfigError(f"{ENV_USERS}: {name}'s password hash is not an argon2 hash; make one with "
                                "`leadroute ui hash-password`")
        if name in users:
            raise UiConfigError(f"{ENV_USERS}: {name} is listed twice")
        users[name] = User(name, role, hashed)
    return users


def format_users(users: Mapping[str, User]) -> str:
    """The ``LEADROUTE_UI_USERS`` value for ``users``."""
    return ",".join(f"{u.name}:{u.role}:{u.password_hash}" for u in users.values())


def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    found = []
    for part in value.replace(";", ",").split(","):
        if part.strip():
            try:
                found.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise UiConfigError(f"{ENV_PROXIES}: '{part.strip()}' is not an IP address or network") from None
    return tuple(found)


@dataclass(frozen=True)
class UiSettings:
    """The dashboard's settings, read once from the environment (:meth:`from_env`)."""

    secret: str
    prefix: str
    users: dict[str, User] = field(default_factory=dict)
    trusted_header: str | None = None
    trusted_proxies: tuple[Any, ...] = ()
    trusted_operators: frozenset[str] = frozenset()
    session_seconds: float = 12 * 3600
    secure_cookie: bool | None = None  # None: Secure when the request came over https
    public_host: str | None = None  # LEADROUTE_PUBLIC_URL's host: the Origin a browser sends behind a proxy

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UiSettings | None:
        """The settings, or None when the dashboard is off (neither users nor a trusted header)."""
        env = os.environ if environ is None else environ
        users_text = env.get(ENV_USERS, "").strip()
        header = env.get(ENV_HEADER, "").strip() or None
        if not users_text and not header:
            return None
        secret = env.get(ENV_SECRET, "")
        if len(secret) < MIN_SECRET:
            raise UiConfigError(f"the dashboard is on ({ENV_USERS} or {ENV_HEADER} is set) but {ENV_SECRET} is "
                                f"{'unset' if not secret else 'shorter than 16 characters'}: set it to a long random "
                                "value (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        proxies = _networks(env.get(ENV_PROXIES, ""))
        if header and not proxies:
            raise UiConfigError(f"{ENV_HEADER} is set but {ENV_PROXIES} is not: name the reverse proxy's addresses "
                                "(e.g. 127.0.0.1), the only ones whose header is believed")
        hours = env.get(ENV_SESSION_HOURS, "").strip()
        try:
            seconds = float(hours) * 3600 if hours else 12 * 3600
        except ValueError:
            raise UiConfigError(f"{ENV_SESSION_HOURS}: '{hours}' is not a number of hours") from None
        secure = env.get(ENV_SECURE_COOKIE, "").strip().lower()
        return cls(
            secret=secret, prefix=env.get("LEADROUTE_PREFIX") or "leadroute",
            users=parse_users(users_text) if users_text else {},
            trusted_header=header, trusted_proxies=proxies,
            trusted_operators=frozenset(n.strip() for n in env.get(ENV_OPERATORS, "").split(",") if n.strip()),
            session_seconds=seconds,
            secure_cookie=None if secure in ("", "auto") else secure in ("1", "true", "yes", "on"),
            public_host=urlsplit(env.get("LEADROUTE_PUBLIC_URL", "").strip()).netloc or None,
        )

    @property
    def cookie_name(self) -> str:
        """The session cookie, one per configuration (prefix), so two dashboards on one host never share it."""
        return "leadroute_ui_" + re.sub(r"[^A-Za-z0-9_-]", "_", self.prefix)

    def from_proxy(self, client_host: str | None) -> bool:
        """Whether the request's peer is one of the trusted proxies."""
        if not client_host or not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(client_host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking, and the CSRF token their state-changing requests must carry."""

    user: str
    role: str
    csrf: str
    via: str  # "password" or "proxy"

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


class Sessions:
    """Signed session cookies and the CSRF tokens bound to them."""

    def __init__(self, settings: UiSettings) -> None:
        self.settings = settings
        # the prefix is part of the salt: a cookie signed for one configuration does not verify under another
        self._signer = URLSafeTimedSerializer(settings.secret, salt=f"leadroute-ui-session:{settings.prefix}")

    def issue(self, user: User) -> tuple[str, Identity]:
        """A new session for ``user``: the cookie value and the identity it stands for."""
        nonce = secrets.token_urlsafe(16)
        cookie = self._signer.dumps({"u": user.name, "n": nonce, "p": self.settings.prefix})
        return cookie, Identity(user.name, user.role, self.csrf_token(user.name, nonce), "password")

    def read(self, cookie: str | None) -> Identity | None:
        """The identity of a valid, unexpired session whose user still exists; None otherwise."""
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=self.settings.session_seconds)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("p") != self.settings.prefix:
            return None
        user = self.settings.users.get(str(data.get("u")))
        if user is None:  # removed from LEADROUTE_UI_USERS: the session ends with it
            return None
        return Identity(user.name, user.role, self.csrf_token(user.name, str(data.get("n"))), "password")

    def from_header(self, name: str) -> Identity:
        """The identity a trusted proxy vouched for."""
        role = "operator" if name in self.settings.trusted_operators else "viewer"
        return Identity(name, role, self.csrf_token(name, "proxy"), "proxy")

    def csrf_token(self, user: str, nonce: str) -> str:
        """The session's CSRF token: an HMAC of the user and session nonce under the secret."""
        message = f"csrf:{self.settings.prefix}:{user}:{nonce}".encode()
        return hmac.new(self.settings.secret.encode(), message, hashlib.sha256).hexdigest()

    def login(self, name: str, password: str) -> User | None:
        """The user if the password is theirs; unknown names cost as much time as known ones."""
        user = self.settings.users.get(name)
        if user is None:
            verify_password(_DUMMY_HASH, password)
            return None
        return user if verify_password(user.password_hash, password) else None


class LoginLimiter:
    """Failed logins per (username, client address) and per address in a sliding window, in this process.

    In-process on purpose: the web process is one process, and a limiter that needs Redis would
    turn a Redis outage into a lock-out. Past the limit, login answers 429 with Retry-After
    until the oldest failure leaves the window; a success clears the pair's failures.
    """

    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 300.0,
                 clock: Any = time.monotonic) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until this pair may try again (0: now)."""
        now = self._clock()
        with self._lock:
            waits = []
            for key, limit in (((user, address), self.per_user), (("", address), self.per_address)):
                failures = self._recent(key, now)
                if len(failures) >= limit:
                    waits.append(failures[len(failures) - limit] + self.window - now)
            return max(waits, default=0.0)

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for key in ((user, address), ("", address)):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:  # a flood of names: forget the oldest rather than grow without end
                for key in list(self._failures)[:50_000]:
                    del self._failures[key]

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._failures.pop((user, address), None)
