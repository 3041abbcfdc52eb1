"""Real servers for the notification channels: a Slack Web API stand-in, a webhook receiver, SMTP.

``http_server`` (function, :class:`ScriptedServer`)
    A real HTTP server on a free loopback port. Every request is recorded
    (``server.requests``); replies come from ``server.script`` (a list of
    ``(status, headers, body)`` consumed in order), then ``server.default``.
    Used as Slack's API (``WebClient(base_url=server.url + "/api/")``) and as a webhook receiver.
``tls`` (session, :class:`TlsKit`)
    A throwaway CA (trustme) with a certificate for 127.0.0.1/localhost, and server and
    client SSL contexts built from it.
``smtp_server`` (function, factory)
    ``smtp_server(mode="none"|"starttls"|"ssl", users={"name": "password"})`` starts an
    aiosmtpd server and returns a :class:`Mailbox` (host, port, ``messages``,
    ``rcpt_replies`` to make a recipient fail with a given SMTP reply).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from worker.store.connection import free_port


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json; charset=utf-8", **headers}, json.dumps(data).encode()


@dataclass
class ScriptedServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: json_reply({"ok": True, "channel": "D1", "ts": "1700000000.000100"}))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self) -> Reply:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            server.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, headers, payload = server.next_reply()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(scripted))
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class TlsKit:
    ca: trustme.CA
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="session")
def tls() -> TlsKit:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TlsKit(ca, server, client)


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        reply = self.box.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted"


@pytest.fixture
def smtp_server(tls: TlsKit) -> Iterator[Callable[..., Mailbox]]:
    controllers: list[Controller] = []

    def start(mode: str = "none", users: dict[str, str] | None = None) -> Mailbox:
        box = Mailbox("127.0.0.1", free_port())
        kwargs: dict[str, Any] = {}
        if users is not None:

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
                ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
                if ok:
                    box.logins.append(auth_data.login.decode())
                return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

            # aiosmtpd only knows about STARTTLS-upgraded sessions; an implicit-TLS socket is encrypted anyway.
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=mode == "starttls")
        if mode == "starttls":
            kwargs.update(tls_context=tls.server, require_starttls=True)
        elif mode == "ssl":
            kwargs.update(ssl_context=tls.server)
        controller = Controller(_Handler(box), hostname=box.host, port=box.port, **kwargs)
        controller.start()
        controllers.append(controller)
        return box

    yield start
    for controller in controllers:
        controller.stop()
