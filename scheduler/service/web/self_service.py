"""A person's own choice about agendas: the signed link in their messages, and its page.

Every message that goes to one person (a 1:1 reminder, the private digest, a
privacy alert) ends with that person's link, ``PUBLIC_URL/opt-out?t=TOKEN``:
a token signed with ``server.secret`` for the purpose ``opt-out``, naming
their address, valid for 30 days. Without ``server.public_url`` and
``server.secret`` there are no links (:func:`opt_out_links` gives None).

- ``GET /opt-out?t=TOKEN`` shows a page: whether agendas are on or off for that
  address, what opting out does, in plain words, and one button. It changes
  nothing: mail scanners open every link they see.
- ``POST /opt-out`` (the button) carries the token again, the choice
  (``out`` or ``in``) and a CSRF token bound to a cookie the page set. Only
  then is the choice recorded (:mod:`feedback_agendas.scheduler.storage.opt_outs`),
  and the next cycle of each calendar applies it.

A forged, altered or expired token, or one made for another purpose (a
session, a CSRF value), gets ``403`` and a page that says the link cannot be
used, never why in detail and never the token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.service.http_server import Request, Response
from feedback_agendas.scheduler.service.web.pages import WebPages, read_form, read_query
from feedback_agendas.scheduler.service.web.security import (
    CSRF_FIELD,
    BadToken,
    CsrfGuard,
    Signer,
)
from feedback_agendas.scheduler.storage.opt_outs import (
    VIA_LINK,
    add_opt_out,
    is_opted_out,
    normalise_address,
    remove_opt_out,
)

PATH = "/opt-out"
PURPOSE = "opt-out"
LINK_TTL = timedelta(days=30)
TEMPLATE = "self_service.html.j2"

OptOutLinks = Callable[[str, datetime], str]


def opt_out_links(cfg: AppConfig) -> OptOutLinks | None:
    """A maker of personal links, ``(address, now) -> URL``; None without public_url and secret."""
    public_url = cfg.server.public_url
    secret = getattr(cfg.server, "secret", None)
    if public_url is None or secret is None:
        return None
    signer = Signer(secret.get_secret_value())
    base = str(public_url).rstrip("/") + PATH

    def link(address: str, now: datetime) -> str:
        try:
            subject = normalise_address(address)
        except UserError:  # not a person (a team's channel): no link
            return ""
        return f"{base}?t={signer.sign(PURPOSE, subject, now=now, ttl=LINK_TTL)}"

    return link


class SelfServicePages:
    """The ``/opt-out`` page: shows a person's choice on GET, records a new one on POST.

    ``on_change`` runs after a choice was recorded (the daemon refreshes its
    rules, so its next cycles apply it at once).
    """

    def __init__(
        self,
        cfg: AppConfig,
        engine: Engine,
        signer: Signer,
        *,
        clock: Callable[[], datetime],
        pages: WebPages | None = None,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._clock = clock
        self._pages = pages or WebPages()
        self._on_change = on_change
        public_url = cfg.server.public_url
        secure = bool(public_url and str(public_url).startswith("https:"))
        self._csrf = CsrfGuard(signer, secure=secure, path=PATH)
        self.use_config(cfg)

    def use_config(self, cfg: AppConfig) -> None:
        """Follow a reloaded config (its ``opt_out.users`` and marker)."""
        self._configured = frozenset(user.lower() for user in cfg.opt_out.users)
        self._marker = cfg.opt_out.marker

    def handle(self, request: Request) -> Response:
        """The route for ``GET`` and ``POST`` on :data:`PATH`."""
        if request.method == "POST":
            return self._post(request)
        return self._get(request)

    def _address(self, token: str) -> str | None:
        try:
            return normalise_address(self._signer.verify(token, PURPOSE, now=self._clock()))
        except (BadToken, UserError):
            return None

    def _get(self, request: Request) -> Response:
        token = read_query(request).get("t", "")
        address = self._address(token)
        if address is None:
            return self._refused()
        browser, set_cookie = self._csrf.browser_value(request.headers)
        return self._page(address, token, self._csrf.token(browser, PURPOSE), set_cookie)

    def _post(self, request: Request) -> Response:
        form = read_form(request)
        token = form.get("t", "")
        address = self._address(token)
        if address is None:
            return self._refused()
        if not self._csrf.check(request.headers, form, PURPOSE):
            return self._render("expired_form", status=403)
        choice = form.get("choice", "")
        if choice == "out":
            add_opt_out(self._engine, address, self._clock(), via=VIA_LINK)
        elif choice == "in":
            remove_opt_out(self._engine, address)
        else:
            return self._render("refused", status=400)
        self._on_change()
        browser, set_cookie = self._csrf.browser_value(request.headers)
        return self._page(
            address, token, self._csrf.token(browser, PURPOSE), set_cookie, done=choice
        )

    def _page(
        self,
        address: str,
        token: str,
        csrf: str,
        set_cookie: tuple[tuple[str, str], ...],
        *,
        done: str = "",
    ) -> Response:
        if address in self._configured:
            state = "config"
        elif is_opted_out(self._engine, address):
            state = "off"
        else:
            state = "on"
        return self._render(
            state, address=address, token=token, csrf=csrf, done=done, headers=set_cookie
        )

    def _refused(self) -> Response:
        return self._render("refused", status=403)

    def _render(
        self,
        state: str,
        *,
        status: int = 200,
        address: str = "",
        token: str = "",
        csrf: str = "",
        done: str = "",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        context = {
            "state": state,
            "done": done,
            "address": address,
            "token": token,
            "csrf": csrf,
            "csrf_field": CSRF_FIELD,
            "path": PATH,
            "marker": self._marker,
        }
        return self._pages.render(TEMPLATE, context, status=status, headers=headers)
