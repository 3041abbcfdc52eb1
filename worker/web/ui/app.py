"""The operator dashboard's routes, added to the ``web`` process's app by :func:`mount_ui`.

Server-rendered pages (Jinja2) and one small script (``static/ui.js``) that refreshes the live
panels every second and draws the report's charts with the plotly.js the Plotly package ships.
Every page needs a session (or a trusted proxy's header); every POST needs the session's CSRF
token; only operators act. The webhook routes are not touched: they stay outside the login,
authenticated by their signatures.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from worker.app.runtime import Runtime, save_configs
from worker.steps import manual
from worker.web.ui import views
from worker.web.ui.auth import Identity, LoginLimiter, Sessions, UiSettings

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
ACTOR_SUFFIX = " (dashboard)"
HEALTH_EVERY = 3.0  # seconds a /healthz result is reused by the live panels
REPORT_WINDOWS = ("24h", "7d", "30d", "90d")  # worker.web.ui.reports.WINDOWS, named here so the page loads no numpy
EXPORTS = ("decisions", "sla", "outcomes", "notifications")  # leadroute export's datasets
COUNT_EVERY = 30.0  # seconds the config page's count of the ledger's decisions is reused
SHADOW_EVERY = 60.0  # seconds the config page's shadow summary is reused
SHADOW_DAYS = 7  # the shadow summary's window, ending now
REPLAYS_SHOWN = 5  # the latest replay summaries on the config page
SAVE_EVERY = 30.0  # seconds between tries to keep the config's text in a ledger that refused it
Handler = Callable[[Request], Awaitable[Response]]
SECURITY_HEADERS = {
    # plotly.js sets inline styles on the SVG it draws; no inline or remote script runs
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def plotly_js() -> Path:
    """The plotly.min.js inside the installed Plotly package (served from here: never a CDN)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def _when(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _clock(value: Any) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S") if isinstance(value, datetime) else ""


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    if abs(value) < 90:
        return f"{value:.0f} s"
    if abs(value) < 5400:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


class Dashboard:
    """The dashboard's state: settings, sessions, the login limiter, the ledger reader and templates."""

    def __init__(self, rt: Runtime, settings: UiSettings, health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
                 ledger_url: str | None = None) -> None:
        self.rt = rt
        self.settings = settings
        self.sessions = Sessions(settings)
        self.limiter = LoginLimiter()
        self.trend = views.Trend()
        self.health_probe = health
        self._health: tuple[float, dict[str, Any] | None] = (0.0, None)
        self.loaded_at = datetime.now(UTC)
        self._ledger_url = ledger_url
        self._ledger: Any = None
        self._ledger_checked = 0.0
        self._count: tuple[float, int | None] = (0.0, None)
        self._config_text: tuple[str | None] | None = None
        self._shadow: tuple[float, Any] = (0.0, None)
        self._saved = False
        self._save_tried = -SAVE_EVERY
        self._save_lock = threading.Lock()
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(when=_when, clock=_clock, seconds=_seconds)

    # -- reading

    @property
    def ledger(self) -> Any:
        """The ledger at ``DATABASE_URL`` as it is (not migrated, never created); None until it exists."""
        if self._ledger is None and time.monotonic() - self._ledger_checked > 5.0:
            self._ledger_checked = time.monotonic()
            from worker.cli.export import open_for_reading  # the one reader of an existing ledger (SQLAlchemy)

            self._ledger = open_for_reading(self._ledger_url)
        return self._ledger

    async def health(self) -> dict[str, Any] | None:
        """``/healthz``'s answer, at most :data:`HEALTH_EVERY` seconds old."""
        if self.health_probe is None:
            return None
        at, cached = self._health
        if cached is None or time.monotonic() - at > HEALTH_EVERY:
            cached = await self.health_probe()
            self._health = (time.monotonic(), cached)
        return cached

    def decision_count(self) -> int | None:
        """The ledger's decisions and re-routes, counted at most every :data:`COUNT_EVERY` seconds."""
        at, count = self._count
        if count is None or time.monotonic() - at > COUNT_EVERY:
            count = _count(self.ledger)
            self._count = (time.monotonic(), count)
        return count

    def config_text(self) -> str | None:
        """The active config's text as loaded (or, for a config built without it, the file's if it still holds that
        version)."""
        if self.rt.config.text is not None:
            return self.rt.config.text
        if self._config_text is None:
            self._config_text = (_config_text(self.rt.config),)
        return self._config_text[0]

    def remember_config(self) -> bool:
        """Keep the active (and shadow) config's text in the ledger, once; retried at most every :data:`SAVE_EVERY`
        seconds while the ledger is missing or refuses (never raised: the dashboard works without it). Blocks on I/O:
        call it off the event loop."""
        with self._save_lock:
            if self._saved or time.monotonic() - self._save_tried < SAVE_EVERY:
                return self._saved
            self._save_tried = time.monotonic()
            ledger = self.ledger
            shadow = self.rt.shadow.config if self.rt.shadow is not None else None
            self._saved = ledger is not None and save_configs(ledger, self.rt.config, shadow)
            return self._saved

    def config_version(self, version: str) -> tuple[str | None, str]:
        """A config version's text (None if unknown) and where it came from."""
        self.remember_config()
        if version == self.rt.config.version_hash and self.config_text() is not None:
            return self.config_text(), "the active config, as this web process loaded it"
        ledger = self.ledger
        if ledger is None:
            return None, "no ledger at DATABASE_URL"
        try:
            found = ledger.config(version)
        except Exception as exc:  # a ledger not migrated to 0005 yet, or down: say so rather than fail
            return None, f"the ledger could not be read ({type(exc).__name__})"
        if found is None:
            return None, "no process that loaded this version wrote to this ledger"
        return found[1], f"first loaded {_when(found[0])} UTC"

    def replays(self) -> list[dict[str, Any]] | str | None:
        """The latest ``leadroute replay`` summaries kept in the ledger; None without a ledger, an error string if
        it cannot be read (a ledger not migrated to 0006 yet, or down)."""
        ledger = self.ledger
        if ledger is None:
            return None
        try:
            return ledger.recent_replays(REPLAYS_SHOWN)
        except Exception as exc:  # the page says so rather than fail
            return f"the ledger could not be read ({type(exc).__name__})"

    def shadow_summary(self) -> Any:
        """``leadroute report --shadow`` over the last :data:`SHADOW_DAYS` days (a :class:`ShadowReport`), reused for
        :data:`SHADOW_EVERY` seconds; None without a ledger, an error string if it cannot be read."""
        at, cached = self._shadow
        if cached is None or time.monotonic() - at > SHADOW_EVERY:
            from worker.reports.model import Period  # the config page's shadow summary only
            from worker.reports.shadow import shadow_report  # the same

            ledger = self.ledger
            if ledger is None:
                return None
            try:
                cached = shadow_report(ledger.engine, Period.last(SHADOW_DAYS))
            except Exception as exc:  # a ledger down or not migrated: the page says so
                return f"the ledger could not be read ({type(exc).__name__})"
            self._shadow = (time.monotonic(), cached)
        return cached

    # -- who is asking

    def identity(self, request: Request) -> Identity | None:
        settings = self.settings
        if settings.trusted_header:
            name = request.headers.get(settings.trusted_header, "").strip()
            if name and settings.from_proxy(request.client.host if request.client else None):
                return self.sessions.from_header(name)
        if settings.users:
            return self.sessions.read(request.cookies.get(settings.cookie_name))
        return None

    def page(self, request: Request, template: str, who: Identity | None, status_code: int = 200,
             **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            who=who, prefix=self.settings.prefix, path=request.url.path, config_version=self.rt.config.version_hash,
            **context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _safe_next(target: str | None) -> str:
    """Only a path on this site after login (never ``//evil.example`` or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/ui/"
    return target


def _same_origin(request: Request, public_host: str | None = None) -> bool:
    """A browser's Origin (or Referer) header, when sent, names this site: the Host it asked for, or the public
    URL's host (``LEADROUTE_PUBLIC_URL``) behind a proxy that rewrites Host."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc in (request.headers.get("host", request.url.netloc), public_host)


def build_routes(dash: Dashboard) -> list[Route]:
    """Every dashboard route; none of them is a webhook."""

    def viewing(handler: Callable[[Request, Identity], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            who = dash.identity(request)
            if who is None:
                if _wants_html(request) and request.method == "GET":
                    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
                return JSONResponse({"error": "login required"}, status_code=401, headers=SECURITY_HEADERS)
            return await handler(request, who)
        return endpoint

    def acting(handler: Callable[[Request, Identity, dict[str, str]], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request, who: Identity) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            token = request.headers.get("x-csrf-token") or form.get("csrf", "")
            if not token or not hmac.compare_digest(token, who.csrf) or not _same_origin(request, dash.settings.public_host):
                return dash.page(request, "message.html", who, 403, title="Refused",
                                 message="This request did not carry this session's CSRF token; reload the page and "
                                         "try again.")
            if not who.can_act:
                return dash.page(request, "message.html", who, 403, title="Not allowed",
                                 message=f"{who.user} is a viewer; only operators can act.")
            return await handler(request, who, form)
        return viewing(endpoint)

    async def root(request: Request) -> Response:
        who = dash.identity(request)
        if who is None:
            if _wants_html(request):
                return RedirectResponse("/login?next=/ui/", status_code=303)
            return JSONResponse({"error": "login required"}, status_code=401, headers=SECURITY_HEADERS)
        return RedirectResponse("/ui/", status_code=303)

    async def login_form(request: Request) -> Response:
        if dash.identity(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        return dash.page(request, "login.html", None, next=_safe_next(request.query_params.get("next")),
                         proxy_only=not dash.settings.users)

    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")) or None)
        address = request.client.host if request.client else "-"
        # no session yet, so no token: a cross-site login post is refused by its origin
        if not _same_origin(request, dash.settings.public_host):
            return dash.page(request, "login.html", None, 403, next=target, error="cross-site login refused")
        wait = dash.limiter.retry_after(name, address)
        if wait > 0:
            response = dash.page(request, "login.html", None, 429, next=target,
                                 error=f"too many failed logins; try again in {int(wait) + 1} s")
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = await run_in_threadpool(dash.sessions.login, name, password) if name and password else None
        if user is None:
            dash.limiter.failed(name, address)
            return dash.page(request, "login.html", None, 401, next=target, error="unknown user or wrong password")
        dash.limiter.succeeded(name, address)
        cookie, _ = dash.sessions.issue(user)
        response = RedirectResponse(target, status_code=303)
        secure = dash.settings.secure_cookie if dash.settings.secure_cookie is not None else request.url.scheme == "https"
        response.set_cookie(dash.settings.cookie_name, cookie, max_age=int(dash.settings.session_seconds), httponly=True,
                            samesite="strict", secure=secure, path="/")
        return response

    async def logout(request: Request, who: Identity, form: dict[str, str]) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(dash.settings.cookie_name, path="/")
        return response

    async def logout_guard(request: Request, who: Identity) -> Response:
        # logging out is allowed to viewers too: check the token, skip the role
        form = {k: str(v) for k, v in (await request.form()).items()}
        token = request.headers.get("x-csrf-token") or form.get("csrf", "")
        if not token or not hmac.compare_digest(token, who.csrf):
            return dash.page(request, "message.html", who, 403, title="Refused", message="missing CSRF token")
        return await logout(request, who, form)

    async def live_page(request: Request, who: Identity) -> Response:
        data = await run_in_threadpool(views.live, dash.rt, dash.trend, await dash.health())
        return dash.page(request, "live.html", who, live=data)

    async def live_panels(request: Request, who: Identity) -> Response:
        data = await run_in_threadpool(views.live, dash.rt, dash.trend, await dash.health())
        return HTMLResponse(dash.render("live_panels.html", live=data, who=who), headers=SECURITY_HEADERS)

    async def live_json(request: Request, who: Identity) -> Response:
        data = await run_in_threadpool(views.live, dash.rt, dash.trend, await dash.health())
        for row in data["pending"]:
            row.pop("spark", None)
        return JSONResponse(json.loads(json.dumps(data, default=str)), headers=SECURITY_HEADERS)

    async def leads(request: Request, who: Identity) -> Response:
        query = request.query_params.get("q", "")
        found = await run_in_threadpool(views.search, dash.rt, dash.ledger, query) if query.strip() else None
        if found and len(found["leads"]) == 1 and found["leads"][0]["lead_id"] == query.strip():
            lead = found["leads"][0]
            return RedirectResponse(f"/ui/leads/{lead['crm']}/{lead['lead_id']}", status_code=303)
        return dash.page(request, "leads.html", who, found=found, query=query)

    async def lead(request: Request, who: Identity) -> Response:
        crm, lead_id = request.path_params["crm"], request.path_params["lead_id"]
        if crm not in dash.rt.crms:
            return dash.page(request, "message.html", who, 404, title="Unknown CRM",
                             message=f"'{crm}' is not configured (configured: {', '.join(dash.rt.crms)})")
        told, warnings = await run_in_threadpool(views.story, dash.rt, dash.ledger, crm, lead_id)
        return dash.page(request, "lead.html", who, crm=crm, lead_id=lead_id, story=told, warnings=warnings,
                         reps=list(dash.rt.config.reps), pools=list(dash.rt.config.pools),
                         done=request.query_params.get("done"), status_code=200 if told else 404)

    async def reroute(request: Request, who: Identity, form: dict[str, str]) -> Response:
        crm, lead_id = request.path_params["crm"], request.path_params["lead_id"]
        target, why = form.get("target", ""), form.get("reason", "").strip()
        kind, _, name = target.partition(":")
        if not why:
            return dash.page(request, "message.html", who, 400, title="A reason is required",
                             message="Say why the lead is re-routed: it is recorded with the decision.")
        try:
            queued = await run_in_threadpool(
                lambda: manual.reroute(dash.rt, crm, lead_id, to=name if kind == "rep" else None,
                                   pool=name if kind == "pool" else None, why=why, actor=who.user + ACTOR_SUFFIX))
        except manual.ManualError as exc:
            return dash.page(request, "message.html", who, 400, title="Not re-routed", message=str(exc))
        return RedirectResponse(f"/ui/leads/{crm}/{lead_id}?done=reroute-{queued.epoch}", status_code=303)

    async def reps_page(request: Request, who: Identity) -> Response:
        rows = await run_in_threadpool(manual.rep_rows, dash.rt)
        return dash.page(request, "reps.html", who, reps=rows, done=request.query_params.get("done"),
                         today=datetime.now(UTC).date().isoformat())

    async def rep_away(request: Request, who: Identity, form: dict[str, str]) -> Response:
        rep = request.path_params["rep"]
        try:
            manual.check_rep(dash.rt, rep)
            until = manual.parse_until(dash.rt, rep, form.get("until", "").strip() or None)
            reason = form.get("reason", "").strip() or "ooo"
            swept = await run_in_threadpool(
                lambda: manual.mark_away(dash.rt, rep, until=until, reason=reason, actor=who.user + ACTOR_SUFFIX))
        except manual.ManualError as exc:
            return dash.page(request, "message.html", who, 400, title="Not marked away", message=str(exc))
        moved = len(swept.actions) if swept is not None else 0
        return RedirectResponse(f"/ui/reps?{urlencode({'done': f'{rep} away ({moved} lead(s) acted on)'})}",
                                status_code=303)

    async def rep_back(request: Request, who: Identity, form: dict[str, str]) -> Response:
        rep = request.path_params["rep"]
        try:
            await run_in_threadpool(manual.mark_back, dash.rt, rep, who.user + ACTOR_SUFFIX)
        except manual.ManualError as exc:
            return dash.page(request, "message.html", who, 400, title="Not changed", message=str(exc))
        return RedirectResponse(f"/ui/reps?{urlencode({'done': f'{rep} back'})}", status_code=303)

    async def reports_page(request: Request, who: Identity) -> Response:
        since = request.query_params.get("since", "30d")
        if since not in REPORT_WINDOWS:
            return dash.page(request, "message.html", who, 400, title="Bad window",
                             message=f"since: '{since}' is not one of {', '.join(REPORT_WINDOWS)}")
        # the page comes at once, without the report's libraries; its script fetches the charts
        return dash.page(request, "reports.html", who, since=since, has_ledger=dash.ledger is not None,
                         windows=REPORT_WINDOWS, datasets=EXPORTS)

    async def report_data(request: Request, who: Identity) -> Response:
        from worker.web.ui import reports  # numpy and Plotly load for the reports only

        try:
            made = await run_in_threadpool(reports.charts, dash.rt, dash.ledger, request.query_params.get("since", "30d"))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=SECURITY_HEADERS)
        return JSONResponse(made, headers=SECURITY_HEADERS)

    async def report_html(request: Request, who: Identity) -> Response:
        from worker.web.ui import reports  # numpy and Plotly load for the reports only

        since = request.query_params.get("since", "30d")
        try:
            text = await run_in_threadpool(reports.html_file, dash.rt, dash.ledger, since)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return HTMLResponse(text, headers={"Content-Disposition": 'attachment; filename="leadroute-report.html"'})

    async def export_csv(request: Request, who: Identity) -> Response:
        from worker.web.ui import reports  # the export's columns, for downloads only

        dataset = request.path_params["dataset"]
        since = request.query_params.get("since", "30d")
        try:
            rows: Iterator[str] = reports.csv_rows(dash.ledger, dataset, since)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="leadroute-{dataset}.csv"'})

    async def config_page(request: Request, who: Identity) -> Response:
        config = dash.rt.config
        shadow = dash.rt.shadow
        await run_in_threadpool(dash.remember_config)
        summary = await run_in_threadpool(dash.shadow_summary) if shadow is not None else None
        return dash.page(request, "config.html", who, config=config, loaded_at=dash.loaded_at,
                         warnings=[str(w) for w in config.warnings], shadow=shadow, summary=summary,
                         shadow_days=SHADOW_DAYS, decisions=await run_in_threadpool(dash.decision_count),
                         replays=await run_in_threadpool(dash.replays))

    async def config_version(request: Request, who: Identity) -> Response:
        version = request.path_params["version"]
        text, source = await run_in_threadpool(dash.config_version, version)
        return dash.page(request, "config_version.html", who, version=version, text=text, source=source,
                         status_code=200 if text is not None else 404)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = plotly_js() if name == "plotly.min.js" else STATIC / name
        if name not in ("ui.js", "ui.css", "plotly.min.js") or not path.is_file():
            return Response("not found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    return [
        Route("/", root, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", viewing(logout_guard), methods=["POST"]),
        Route("/ui", lambda request: RedirectResponse("/ui/", status_code=307), methods=["GET"]),
        Route("/ui/", viewing(live_page), methods=["GET"]),
        Route("/ui/live", viewing(live_panels), methods=["GET"]),
        Route("/ui/live.json", viewing(live_json), methods=["GET"]),
        Route("/ui/leads", viewing(leads), methods=["GET"]),
        Route("/ui/leads/{crm}/{lead_id}", viewing(lead), methods=["GET"]),
        Route("/ui/leads/{crm}/{lead_id}/reroute", acting(reroute), methods=["POST"]),
        Route("/ui/reps", viewing(reps_page), methods=["GET"]),
        Route("/ui/reps/{rep}/ooo", acting(rep_away), methods=["POST"]),
        Route("/ui/reps/{rep}/back", acting(rep_back), methods=["POST"]),
        Route("/ui/reports", viewing(reports_page), methods=["GET"]),
        Route("/ui/reports/data", viewing(report_data), methods=["GET"]),
        Route("/ui/reports/report.html", viewing(report_html), methods=["GET"]),
        Route("/ui/exports/{dataset}.csv", viewing(export_csv), methods=["GET"]),
        Route("/ui/config", viewing(config_page), methods=["GET"]),
        Route("/ui/config/{version}", viewing(config_version), methods=["GET"]),
        Route("/ui/static/{name}", static, methods=["GET"]),
    ]


def _count(ledger: Any) -> int | None:
    try:
        return views.ledger_count(ledger)
    except Exception:  # a ledger not migrated yet or down: the page says unknown rather than failing
        return None


def _config_text(config: Any) -> str | None:
    """The config file's text if it is still the version that was loaded (an edited file is not what routes)."""
    from worker.config import ConfigError, parse_config  # the config page only

    try:
        text = Path(config.file).read_text(encoding="utf-8")
        return text if parse_config(text, config.file).version_hash == config.version_hash else None
    except (OSError, ConfigError):
        return None


def disabled_routes() -> list[Route]:
    """``/`` says how to turn the dashboard on, when it is off."""

    async def off(request: Request) -> Response:
        return JSONResponse({"error": "the dashboard is off: set LEADROUTE_UI_USERS (or LEADROUTE_UI_TRUSTED_HEADER) "
                                      "and LEADROUTE_UI_SECRET; see docs/dashboard.md"}, status_code=404)

    return [Route("/", off, methods=["GET"]), Route("/ui/", off, methods=["GET"]), Route("/login", off, methods=["GET"])]


def health_from(app: Starlette) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The app's own ``/healthz`` (as wrapped when the dashboard asks), as a probe for the live panels."""

    async def probe() -> dict[str, Any]:
        route = next(r for r in app.router.routes if isinstance(r, Route) and r.path == "/healthz")
        response = await route.endpoint(Request({"type": "http", "method": "GET", "path": "/healthz", "headers": [],
                                                 "query_string": b""}))
        return dict(json.loads(bytes(response.body)))

    return probe


def mount_ui(app: Starlette, rt: Runtime, settings: UiSettings | None,
             health: Callable[[], Awaitable[dict[str, Any]]] | None = None, ledger_url: str | None = None) -> Dashboard | None:
    """Add the dashboard's routes to ``app`` (or, when ``settings`` is None, a ``/`` that says it is off)."""
    if settings is None:
        app.router.routes.extend(disabled_routes())
        return None
    dash = Dashboard(rt, settings, health, ledger_url)
    app.router.routes.extend(build_routes(dash))
    # keep the config's text in the ledger now, off the start-up path (an unreachable database must not hold it)
    threading.Thread(target=dash.remember_config, name="ui-save-config", daemon=True).start()
    app.state.dashboard = dash
    return dash

