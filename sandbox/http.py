"""What every sandbox handler speaks: the request context and the response, apart from the app
that routes them, so the API modules and the app import these and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import SandboxState, SfSession

JSON_SF = b"application/json;charset=UTF-8"
JSON_HS = b"application/json;charset=utf-8"


@dataclass
class Resp:
    """A handler's answer; ``body`` is JSON-encoded unless ``raw`` is given."""

    status: int
    body: Any = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw: bytes | None = None
    content_type: bytes = JSON_SF


@dataclass
class Ctx:
    state: SandboxState
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    api: str
    endpoint: str
    base_url: str
    session: SfSession | None = None
    app: Any = None

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def q_list(self, name: str) -> list[str]:
        """Repeated or comma-separated query parameter values."""
        out: list[str] = []
        for v in self.query.get(name, []):
            out.extend(p for p in v.split(",") if p)
        return out
