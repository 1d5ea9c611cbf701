"""Who may see the dashboard: the local machine, a logged-in admin, or a trusted proxy's user.

Three modes, from ``server``:

- ``local``: the daemon listens on a loopback address and no login is
  configured. Every request comes from this machine, so it is let in; the
  ``Host`` header must name a loopback address too, so a web page that
  rebinds its own name to 127.0.0.1 (DNS rebinding) is not.
- ``login``: ``server.admin`` names a user and a slow hash of the password.
  A login sets a signed session cookie (HttpOnly, SameSite=Strict, Secure
  behind https, 12 hours); failed logins are throttled per address.
- ``proxy``: ``server.trusted_proxy_header`` names the header in which a
  reverse proxy that authenticated the person passes their name; it is
  believed only from ``server.trusted_proxy_addresses`` (the proxy's own
  address as seen by the daemon).

With both ``admin`` and a proxy header, either lets a person in. The config
refuses a non-loopback host with neither (see ``ServerConfig``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from feedback_agendas.integrations.config_types import LOOPBACK_HOSTS
from feedback_agendas.scheduler.config.schema import ServerConfig
from feedback_agendas.scheduler.service.http_server import Request
from feedback_agendas.scheduler.service.web.passwords import LoginThrottle, verify_password
from feedback_agendas.scheduler.service.web.security import (
    BadToken,
    Signer,
    cookie_header,
    read_cookies,
)

SESSION_COOKIE = "fa_session"
SESSION_TTL = timedelta(hours=12)
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")

Mode = Literal["local", "login", "proxy"]


class Access:
    """Decides who a request is, and makes login and logout answers."""

    def __init__(
        self,
        server: ServerConfig,
        signer: Signer,
        *,
        clock: Callable[[], datetime],
        throttle: LoginThrottle | None = None,
        cookie_path: str = "/admin/",
    ) -> None:
        self._server = server
        self._signer = signer
        self._clock = clock
        self.throttle = throttle or LoginThrottle()
        self._cookie_path = cookie_path
        self.secure_cookies = bool(server.public_url and server.public_url.startswith("https:"))
        self.modes: tuple[Mode, ...] = self._modes(server)

    @staticmethod
    def _modes(server: ServerConfig) -> tuple[Mode, ...]:
        modes: list[Mode] = []
        if server.admin is not None:
            modes.append("login")
        if server.trusted_proxy_header is not None:
            modes.append("proxy")
        if not modes and server.host in LOOPBACK_HOSTS:
            modes.append("local")
        return tuple(modes)

    @property
    def can_log_in(self) -> bool:
        return "login" in self.modes

    def user(self, request: Request) -> str | None:
        """The person making ``request``, or None when they must log in (or may not enter)."""
        if "local" in self.modes and _is_loopback_host(request.header("Host")):
            return "local"
        if "proxy" in self.modes and request.client in self._server.trusted_proxy_addresses:
            assert self._server.trusted_proxy_header is not None
            name = (request.header(self._server.trusted_proxy_header) or "").strip()
            if name:
                return name[:200]
        if "login" in self.modes:
            token = read_cookies(request.headers).get(SESSION_COOKIE, "")
            if token:
                try:
                    return self._signer.verify(token, "session", now=self._clock())
                except BadToken:
                    return None
        return None

    def log_in(self, client: str, username: str, password: str) -> tuple[str | None, float]:
        """(the session cookie header value, 0) on success; (None, seconds to wait) otherwise.

        While an address must wait, its attempts are refused without checking
        the password (and do not extend the wait).
        """
        wait = self.throttle.wait_seconds(client)
        if wait > 0:
            return None, wait
        admin = self._server.admin
        ok = admin is not None and verify_password(password, admin.password_hash.get_secret_value())
        if not (ok and admin is not None and username == admin.username):
            self.throttle.failed(client)
            return None, self.throttle.wait_seconds(client)
        self.throttle.succeeded(client)
        token = self._signer.sign("session", admin.username, now=self._clock(), ttl=SESSION_TTL)
        return self.session_cookie(token)[1], 0.0

    def session_cookie(self, token: str, *, max_age: int | None = None) -> tuple[str, str]:
        age = int(SESSION_TTL.total_seconds()) if max_age is None else max_age
        return cookie_header(
            SESSION_COOKIE, token, max_age=age, path=self._cookie_path, secure=self.secure_cookies
        )

    def logout_cookie(self) -> tuple[str, str]:
        return self.session_cookie("", max_age=0)


def _is_loopback_host(host: str | None) -> bool:
    """True when a Host header names this machine (localhost, 127.0.0.1, [::1]), any port."""
    if not host or not _HOST.match(host.strip()):
        return False
    name = host.strip()
    if name.startswith("["):
        name = name[1 : name.index("]")]
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name.lower() in LOOPBACK_HOSTS or name.startswith("127.")
