"""The ASGI application: routing, the fault/auth/limit pipeline, counters.

A thin hand-written ASGI app (run by uvicorn) rather than a framework router: the sandbox must
serve well over 1,000 requests/s on two cores so that it is never the bottleneck in benchmarks,
and it must accept the exact URL shapes real clients send (trailing slashes, ``vNN.N`` versions)
without redirects.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from . import admin, hubspot, salesforce
from .faults import FAULT_KINDS
from .http import JSON_HS, JSON_SF, Ctx, Resp
from .state import RequestError, SandboxState

Handler = Callable[[Ctx], Resp]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    api: str  # salesforce | hubspot | oauth | admin
    name: Callable[[dict[str, str]], str]
    handler: Handler


class Counters:
    """Requests by endpoint and status, so tests can assert how many calls a job made."""

    def __init__(self) -> None:
        self.by_endpoint: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.total = 0

    def add(self, key: str, status: str) -> None:
        self.by_endpoint[key][status] += 1
        self.total += 1

    def clear(self) -> None:
        self.by_endpoint.clear()
        self.total = 0

    def to_json(self) -> dict[str, Any]:
        endpoints = {}
        for key, statuses in sorted(self.by_endpoint.items()):
            item = dict(sorted(statuses.items()))
            item["total"] = sum(statuses.values())
            endpoints[key] = item
        return {"total": self.total, "endpoints": endpoints}


# Transports by client address, filled in by the uvicorn protocol subclass (see run.py), so that
# the "dropped connection" fault can cut the TCP connection without answering.
TRANSPORTS: dict[tuple[str, int], asyncio.Transport] = {}


class SandboxApp:
    """The ASGI callable; holds the state and the routing table."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.counters = Counters()
        self.recording: list[dict[str, Any]] | None = None  # request/response log, when switched on
        self.routes: dict[str, list[Route]] = {"salesforce": [], "hubspot": [], "oauth": [], "admin": []}
        for module in (salesforce, hubspot, admin):
            for method, pattern, api, name, handler in module.ROUTES:
                name_fn = name if callable(name) else (lambda _p, n=name: n)
                self.routes[api].append(Route(method, re.compile(pattern), api, name_fn, handler))
        self.by_method: dict[tuple[str, str], list[Route]] = defaultdict(list)
        for api, routes in self.routes.items():
            for route in routes:
                self.by_method[(api, route.method)].append(route)

    def classify(self, path: str) -> str | None:
        if path.startswith("/services/data"):
            return "salesforce"
        if path.startswith("/crm/"):
            return "hubspot"
        if path.startswith("/__sandbox"):
            return "admin"
        if "/services/oauth2/" in path or "/services/Soap/u/" in path:
            return "oauth"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        api = self.classify(path)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}  # already lower-case
        body = b""
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
        route, params = self.match(api, method, path)
        if route is None or api is None:
            resp = not_found(api or "salesforce", method, path)
            await self.send(send, resp)
            return
        host = headers.get("host", "127.0.0.1")
        endpoint = route.name(params)
        qs = scope["query_string"]
        query = parse_qs(qs.decode("latin-1"), keep_blank_values=True) if qs else {}
        ctx = Ctx(self.state, method, path, params, query, headers, body, route.api, endpoint, f"https://{host}",
                  app=self)
        if api == "admin":
            try:
                resp = route.handler(ctx)
            except (ValueError, KeyError, TypeError) as exc:
                resp = Resp(400, {"error": str(exc)})
            except RequestError as exc:
                resp = Resp(exc.status, exc.body)
            await self.send(send, resp)
            return
        counter_key = f"{api} {endpoint}" if api != "oauth" else f"salesforce {endpoint}"
        faults = self.state.faults
        fault_api = "salesforce" if api in ("salesforce", "oauth") else "hubspot"
        if faults.applies(fault_api, endpoint) or faults.scripted:
            delay = faults.latency_seconds() if faults.applies(fault_api, endpoint) else 0.0
            if delay:
                await asyncio.sleep(delay)
            fault = self.pick_fault(fault_api, endpoint)
            if fault == "drop":
                self.counters.add(counter_key, "dropped")
                await self.drop(scope)
                return
            if fault is not None:
                resp = self.fault_response(fault, fault_api, ctx)
                self.counters.add(counter_key, str(resp.status))
                await self.send(send, resp)
                return
        try:
            resp = self.pipeline(route, ctx)
        except RequestError as exc:
            resp = Resp(exc.status, exc.body, content_type=JSON_HS if api == "hubspot" else JSON_SF)
        if api == "salesforce":
            used = self.state.sf_api_used
            resp.headers.append((b"sforce-limit-info",
                                 f"api-usage={used}/{self.state.limits['salesforce']['daily_api_requests']}".encode()))
        self.counters.add(counter_key, str(resp.status))
        if self.recording is not None and len(self.recording) < 10_000:
            self.recording.append(self.exchange(scope, ctx, resp))
        await self.send(send, resp)

    @staticmethod
    def exchange(scope: dict[str, Any], ctx: Ctx, resp: Resp) -> dict[str, Any]:
        """One recorded request/response pair (for contract tests against the vendors' OpenAPI specs)."""
        body = resp.raw.decode("utf-8", "replace") if resp.raw is not None else \
            ("" if resp.body is None else json.dumps(resp.body))
        return {
            "api": ctx.api, "endpoint": ctx.endpoint, "method": ctx.method, "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "request_headers": ctx.headers, "request_body": ctx.body.decode("utf-8", "replace"),
            "status": resp.status, "response_headers": {k.decode(): v.decode() for k, v in resp.headers},
            "content_type": resp.content_type.decode(), "response_body": body,
        }

    def match(self, api: str | None, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        if api is None:
            return None, {}
        for route in self.by_method.get((api, method), ()):
            m = route.pattern.fullmatch(path)
            if m:
                return route, m.groupdict()
        return None, {}

    def pick_fault(self, api: str, endpoint: str) -> str | None:
        faults = self.state.faults
        if faults.scripted:
            hit = faults.take_scripted(api, endpoint, ("drop", "503", "429", "invalid_session"))
            if hit is not None:
                return hit.kind
        if not faults.applies(api, endpoint):
            return None
        if faults.roll(faults.drop_rate):
            return "drop"
        if faults.roll(faults.error_503_rate):
            return "503"
        if api == "hubspot" and faults.roll(faults.error_429_rate):
            return "429"
        return None

    def fault_response(self, kind: str, api: str, ctx: Ctx) -> Resp:
        if api == "salesforce":
            if kind == "invalid_session":
                token = salesforce.bearer(ctx)
                if token:
                    self.state.sessions.pop(token, None)
                return salesforce.invalid_session()
            if kind == "429":
                return Resp(429, [{"message": "Too many requests (injected fault).", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                            headers=[(b"retry-after", b"1")])
            return Resp(503, [{"message": "Server is temporarily unavailable; please retry shortly.",
                               "errorCode": "SERVER_UNAVAILABLE"}])
        if kind == "429":
            return hubspot.rate_limited(self.state, "TEN_SECONDLY_ROLLING", retry_after_s=1, injected=True)
        if kind == "invalid_session":
            return hubspot.unauthorized()
        return hubspot.hs_error(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable; retry shortly.")

    def pipeline(self, route: Route, ctx: Ctx) -> Resp:
        if route.api == "salesforce":
            denied = salesforce.authenticate(ctx)
            if denied is not None:
                return denied
            denied = salesforce.charge_api(ctx)
            if denied is not None:
                return denied
            return route.handler(ctx)
        if route.api == "hubspot":
            denied = hubspot.authenticate(ctx)
            if denied is not None:
                return denied
            denied, headers = hubspot.charge(ctx)
            if denied is not None:
                return denied
            resp = route.handler(ctx)
            resp.headers.extend(headers)
            return resp
        return route.handler(ctx)

    async def drop(self, scope: dict[str, Any]) -> None:
        client = scope.get("client")
        transport = TRANSPORTS.get(tuple(client)) if client else None  # type: ignore[arg-type]
        if transport is not None:
            transport.abort()
        # Let uvicorn notice the lost connection so it does not try to answer with a 500.
        for _ in range(3):
            await asyncio.sleep(0)

    @staticmethod
    async def send(send: Callable[..., Any], resp: Resp) -> None:
        if resp.raw is not None:
            payload = resp.raw
        elif resp.body is None:
            payload = b""
        else:
            payload = json.dumps(resp.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = [(b"content-length", str(len(payload)).encode())]
        if payload or resp.status not in (204, 304):
            headers.append((b"content-type", resp.content_type))
        headers.extend(resp.headers)
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def not_found(api: str, method: str, path: str) -> Resp:
    if api == "hubspot":
        return hubspot.hs_error(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")
    if api == "admin":
        return Resp(404, {"error": f"no admin endpoint {method} {path}; see docs/sandbox.md"})
    return Resp(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])


assert set(FAULT_KINDS) >= {"drop", "503", "429", "invalid_session", "lock_row"}
