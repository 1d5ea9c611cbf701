"""The admin dashboard under ``/admin/``, served by the daemon's endpoint server.

Pages (all GET, all work without JavaScript):

- ``/admin/``: every calendar's health, failing first; the outbox; replicas
  and their leases; the config generation. ``?sort=&state=&q=&page=``.
- ``/admin/calendars/NAME``: recent cycles, counts by action and skip reason,
  error history, and a "Sync now" button (POST).
- ``/admin/preview?user=ADDRESS&days=N``: what we would write into that
  person's meetings and why, read live (titles and agenda text are shown and
  then forgotten: never stored, never logged).
- ``/admin/teams``: public praise wins per week as a chart, the streak, the
  next meetings with a praise slot.
- ``/admin/opt-outs``: who is opted out, from the config (and self-service).
- ``/admin/login`` and ``/admin/logout`` when ``server.admin`` is set.

Every POST carries the CSRF token of :class:`~.security.CsrfGuard`; every
answer carries the security headers. Who may enter is :class:`~.access.Access`.

It is a little over 400 lines: the routing table of every page and the POST
actions (log in, Sync now, opt-outs) are kept in one place, so that each POST's
CSRF check is seen beside its route; the pages' data live in their own modules.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.service.http_server import EndpointServer, Request, Response
from feedback_agendas.scheduler.service.web.access import Access
from feedback_agendas.scheduler.service.web.calendar_detail import calendar_detail
from feedback_agendas.scheduler.service.web.overview import (
    SORTS,
    STATE_TEXT,
    STATES,
    CalendarIndex,
    build_overview,
)
from feedback_agendas.scheduler.service.web.pages import (
    MAX_FORM_BODY,
    WebPages,
    not_found,
    read_form,
    read_query,
    redirect,
)
from feedback_agendas.scheduler.service.web.security import CSRF_FIELD, CsrfGuard, Signer
from feedback_agendas.scheduler.service.web.teams import team_charts, upcoming_praise_meetings

log = logging.getLogger(__name__)

PREFIX = "/admin"
CSRF_PURPOSE = "admin"
PREVIEW_MAX_DAYS = 31


def config_fingerprint(cfg: AppConfig) -> str:
    """A short digest of the config as loaded (secrets masked, so none goes into it)."""
    return hashlib.sha256(cfg.model_dump_json(warnings=False).encode("utf-8")).hexdigest()[:12]


class Dashboard:
    """The dashboard's routes over one :class:`~feedback_agendas.scheduler.service.daemon.Daemon`.

    ``sync_now(name)`` asks for a cycle of calendar ``name`` soon (the service
    passes its scheduler's one-off job); by default a thread runs it.
    ``generation()`` is the config's generation (1 until a reload).
    """

    def __init__(
        self,
        daemon: Any,
        *,
        sync_now: Callable[[str], None] | None = None,
        generation: Callable[[], int] = lambda: 1,
        signer: Signer | None = None,
        pages: WebPages | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.daemon = daemon
        cfg: AppConfig = daemon.cfg
        secret = cfg.server.secret
        self.signer = signer or (
            Signer(secret.get_secret_value()) if secret is not None else Signer.ephemeral()
        )
        self.clock = clock or daemon.clock
        self.pages = pages or WebPages()
        self.access = Access(cfg.server, self.signer, clock=self.clock)
        self.csrf = CsrfGuard(self.signer, secure=self.access.secure_cookies)
        self._sync_now = sync_now or self._sync_in_thread
        self._generation = generation
        # Per config (a reload brings a new one): its calendars' index and fingerprint.
        self._per_config: tuple[AppConfig, Any, CalendarIndex, str] | None = None

    def _config_view(self) -> tuple[CalendarIndex, str]:
        cfg, calendars = self.cfg, self.daemon.calendars
        cached = self._per_config
        if cached is None or cached[0] is not cfg or cached[1] is not calendars:
            index = CalendarIndex(cfg, calendars.values())
            cached = (cfg, calendars, index, config_fingerprint(cfg))
            self._per_config = cached
        return cached[2], cached[3]

    @property
    def cfg(self) -> AppConfig:
        return self.daemon.cfg  # type: ignore[no-any-return]

    def mount(self, server: EndpointServer) -> None:
        """Serve the dashboard (``/admin/``) and the stylesheet (``/static/``) on ``server``."""
        server.route("GET", PREFIX, lambda _request: redirect(PREFIX + "/"))
        server.route("GET POST", PREFIX + "/", self.handle, max_body=MAX_FORM_BODY)
        server.route("GET", self.pages.static_prefix, self.pages.static)

    # -- dispatch ------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path.removeprefix(PREFIX)
        browser, set_cookie = self.csrf.browser_value(request.headers)
        if path == "/login":
            return self._login(request, browser, set_cookie)
        user = self.access.user(request)
        if user is None:
            if self.access.can_log_in:
                return redirect(PREFIX + "/login", headers=set_cookie)
            if "proxy" in self.access.modes:
                why = "Open the dashboard through the sign-in proxy."
            else:
                why = "Open the dashboard from this machine (http://127.0.0.1:PORT/admin/)."
            return self._message(403, "Not allowed", why, set_cookie)
        if request.method == "POST" and not self.csrf.check(
            request.headers, read_form(request), CSRF_PURPOSE
        ):
            log.warning("dashboard: refused a POST to %s without a valid CSRF token", path)
            return self._message(
                403, "Refused", "The form was stale or came from elsewhere; reload the page.", ()
            )
        context = {
            "user": user,
            "csrf_field": CSRF_FIELD,
            "csrf": self.csrf.token(browser, CSRF_PURPOSE),
            "prefix": PREFIX,
            "can_log_out": self.access.can_log_in and user != "local",
        }
        answer = self._route(request, path, context)
        if set_cookie:
            answer = Response(
                answer.status, answer.body, answer.content_type, answer.headers + set_cookie
            )
        return answer

    def _route(self, request: Request, path: str, context: dict[str, Any]) -> Response:
        post = request.method == "POST"
        if path == "/" and not post:
            return self._overview(request, context)
        if path == "/logout" and post:
            return redirect(PREFIX + "/login", headers=(self.access.logout_cookie(),))
        if path == "/teams" and not post:
            return self._teams(context)
        if path == "/preview" and not post:
            return self._preview(request, context)
        if path == "/opt-outs":
            if post:
                return self._change_opt_out(request, context)
            return self._opt_outs(request, context)
        if path.startswith("/calendars/"):
            rest = path.removeprefix("/calendars/")
            name, _, action = rest.partition("/")
            name = unquote(name)
            if name not in self.daemon.calendars:
                return not_found()
            if not action and not post:
                return self._calendar(request, name, context)
            if action == "sync" and post:
                self._sync_now(name)
                log.info("dashboard: sync of calendar %s asked for", name)
                return redirect(f"{PREFIX}/calendars/{quote(name, safe='')}?sync=asked")
        return not_found()

    # -- pages ---------------------------------------------------------------------

    def _message(
        self, status: int, heading: str, text: str, headers: tuple[tuple[str, str], ...]
    ) -> Response:
        return self.pages.render(
            "message.html.j2", {"heading": heading, "text": text}, status=status, headers=headers
        )

    def _login(
        self, request: Request, browser: str, set_cookie: tuple[tuple[str, str], ...]
    ) -> Response:
        if not self.access.can_log_in:
            return redirect(PREFIX + "/", headers=set_cookie)
        context: dict[str, Any] = {
            "csrf_field": CSRF_FIELD,
            "csrf": self.csrf.token(browser, "login"),
            "prefix": PREFIX,
            "problem": None,
        }
        if request.method != "POST":
            return self.pages.render("admin/login.html.j2", context, headers=set_cookie)
        form = read_form(request)
        if not self.csrf.check(request.headers, form, "login"):
            context["problem"] = "The form was stale; please try again."
            return self.pages.render("admin/login.html.j2", context, status=403, headers=set_cookie)
        cookie, wait = self.access.log_in(
            request.client, form.get("username", ""), form.get("password", "")
        )
        if cookie is None:
            log.warning("dashboard: failed login from %s", request.client)
            context["problem"] = "Wrong user name or password." + (
                f" Too many tries: wait {wait:.0f} s before the next one." if wait > 0 else ""
            )
            status = 429 if wait > 0 else 401
            headers = set_cookie + ((("Retry-After", str(int(wait) + 1)),) if wait > 0 else ())
            return self.pages.render("admin/login.html.j2", context, status=status, headers=headers)
        return redirect(PREFIX + "/", headers=(("Set-Cookie", cookie), *set_cookie))

    def _overview(self, request: Request, context: dict[str, Any]) -> Response:
        query = read_query(request)
        try:
            page = int(query.get("page", "1"))
        except ValueError:
            page = 1
        index, fingerprint = self._config_view()
        overview = build_overview(
            self.cfg,
            self.daemon.store,
            self.clock(),
            started_at=self.daemon.started_at,
            replica_id=self.daemon.replica_id,
            index=index,
            error_messages=getattr(self.daemon, "last_errors", {}),
            generation=self._generation(),
            fingerprint=fingerprint,
            sort=query.get("sort", "state"),
            state=query.get("state", ""),
            query=query.get("q", "")[:200],
            page=page,
        )
        return self.pages.render(
            "admin/overview.html.j2",
            {
                **context,
                "nav": "overview",
                "o": overview,
                "states": STATES,
                "state_text": STATE_TEXT,
                "sorts": SORTS,
                "page_url": _page_url(overview),
                "ago": _ago,
                "when": _when,
            },
        )

    def _calendar(self, request: Request, name: str, context: dict[str, Any]) -> Response:
        detail = calendar_detail(self.daemon.store, name)
        message = getattr(self.daemon, "last_errors", {}).get(name)
        return self.pages.render(
            "admin/calendar.html.j2",
            {
                **context,
                "nav": "overview",
                "c": detail,
                "calendar": self.daemon.calendars[name],
                "message": message,
                "asked": read_query(request).get("sync") == "asked",
                "when": _when,
            },
        )

    def _teams(self, context: dict[str, Any]) -> Response:
        now = self.clock()
        zones = {name: team.timezone for name, team in self.daemon.teams.items()}
        charts = team_charts(
            self.daemon.store, zones, now, upcoming=upcoming_praise_meetings(self.daemon.store, now)
        )
        return self.pages.render(
            "admin/teams.html.j2",
            {**context, "nav": "teams", "charts": charts, "local_time": _local_time},
        )

    def _preview(self, request: Request, context: dict[str, Any]) -> Response:
        from feedback_agendas.scheduler.sync.preview import preview_user

        query = read_query(request)
        user = query.get("user", "").strip()[:320]
        try:
            days = min(PREVIEW_MAX_DAYS, max(1, int(query.get("days", "7"))))
        except ValueError:
            days = 7
        result, problem = None, None
        if user:
            try:
                result = preview_user(self.cfg, user, self.clock(), days)
            except UserError as exc:
                problem = str(exc)
        owners = sorted({c.owner for c in self.daemon.calendars.values()})
        return self.pages.render(
            "admin/preview.html.j2",
            {
                **context,
                "nav": "preview",
                "user_query": user,
                "days": days,
                "owners": owners if len(owners) <= 500 else [],
                "result": result,
                "problem": problem,
                "local_time": _local_time,
            },
        )

    def _opt_outs(
        self, request: Request, context: dict[str, Any], *, problem: str | None = None
    ) -> Response:
        from feedback_agendas.scheduler.storage.opt_outs import list_opt_outs

        opt_out = self.cfg.opt_out
        return self.pages.render(
            "admin/opt_outs.html.j2",
            {
                **context,
                "nav": "opt-outs",
                "users": sorted(opt_out.users),
                "teams": sorted(opt_out.teams),
                "calendars": sorted(opt_out.calendars),
                "marker": opt_out.marker,
                "self_service": list_opt_outs(self.daemon.db),
                "done": read_query(request).get("done", ""),
                "problem": problem,
                "when": _when,
            },
            status=400 if problem else 200,
        )

    def _change_opt_out(self, request: Request, context: dict[str, Any]) -> Response:
        """Add or remove a self-service opt-out; the next cycle of each calendar applies it."""
        from feedback_agendas.scheduler.storage.opt_outs import (
            VIA_DASHBOARD,
            add_opt_out,
            remove_opt_out,
        )

        form = read_form(request)
        action = form.get("action", "")
        address = form.get("address", "")
        engine = self.daemon.db
        try:
            if action == "add":
                changed = add_opt_out(engine, address, self.clock(), via=VIA_DASHBOARD)
            elif action == "remove":
                changed = remove_opt_out(engine, address)
            else:
                return not_found()
        except UserError as exc:
            return self._opt_outs(request, context, problem=str(exc))
        refresh = getattr(self.daemon, "refresh_rules", None)
        if changed and refresh is not None:
            refresh(self.clock())  # this process's next cycles use it at once
        log.info(
            "dashboard: self-service opt-out %s (%s)", action, "done" if changed else "no change"
        )
        done = {"add": "added", "remove": "removed"}[action] if changed else "unchanged"
        return redirect(f"{PREFIX}/opt-outs?done={done}")

    # -- actions -------------------------------------------------------------------

    def _sync_in_thread(self, name: str) -> None:
        threading.Thread(
            target=self.daemon.sync_calendar, args=(name,), name=f"sync-now:{name}", daemon=True
        ).start()


def _page_url(overview: Any) -> Callable[..., str]:
    def url(**changes: Any) -> str:
        params = {"sort": overview.sort, "state": overview.state, "q": overview.query}
        params.update({k: str(v) for k, v in changes.items()})
        kept = {k: v for k, v in params.items() if v not in ("", None)}
        return f"{PREFIX}/" + (f"?{urlencode(kept)}" if kept else "")

    return url


def _ago(delta: timedelta | None) -> str:
    """A short age: 42 s, 5 min, 3 h, 2 d."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{max(0, seconds)} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _when(value: datetime | None, now: datetime | None = None) -> str:
    """A UTC time as ``30 Nov 09:15 UTC`` (with its age when ``now`` is given)."""
    if value is None:
        return "never"
    value = value.astimezone(UTC)
    text = f"{value:%d %b %H:%M:%S} UTC"
    if now is not None:
        text += f" ({_ago(now - value)} ago)"
    return text


def _local_time(value: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return f"{value.astimezone(ZoneInfo(zone)):%a %d %b %H:%M} ({zone})"


def mount_dashboard(
    server: EndpointServer,
    daemon: Any,
    *,
    sync_now: Callable[[str], None] | None = None,
    generation: Callable[[], int] = lambda: 1,
) -> Dashboard | None:
    """Serve the dashboard on ``server`` when ``server.dashboard`` is on; return it."""
    if not daemon.cfg.server.dashboard:
        return None
    dashboard = Dashboard(daemon, sync_now=sync_now, generation=generation)
    dashboard.mount(server)
    return dashboard


__all__ = ["Dashboard", "config_fingerprint", "mount_dashboard"]
