"""What every web page of the daemon needs to be safe: signed tokens, CSRF, headers, cookies.

- :class:`Signer`: HMAC-SHA256 tokens that carry a *purpose* (``"opt-out"``,
  ``"session"``, ...), a subject and an expiry. A token made for one purpose
  never verifies for another (the purpose is inside what is signed, and each
  purpose signs with its own key derived from the secret), an expired or
  altered one never verifies, and the comparison takes constant time.
- :class:`CsrfGuard`: a per-browser random value in an HttpOnly, SameSite
  cookie, and a form token bound to it (and to the form's purpose). A POST is
  accepted only with both, matching. A page on another site can neither read
  the cookie nor compute the token.
- :func:`security_headers`: a strict Content-Security-Policy (no inline script
  or style, nothing from another origin, no framing), ``X-Frame-Options:
  DENY``, ``Referrer-Policy: no-referrer``, ``nosniff`` and ``no-store``.
- :func:`cookie_header`, :func:`read_cookies`: cookies with the safe flags.

Nothing here keeps state across processes: with ``server.secret`` set, tokens
made by one replica verify in every replica and after a restart.

Errors::

    FeedbackAgendasError
    └── BadToken          a token that is forged, altered, expired or for another purpose
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie

from feedback_agendas.agendas.errors import FeedbackAgendasError

# Every page: nothing but our own files; no inline script or style (so an
# injected <script> or style="" does nothing), no plugins, no framing, forms
# post only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_PURPOSE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# A secret shorter than this is refused: the tokens it signs could be guessed offline.
MIN_SECRET_BYTES = 16


class BadToken(FeedbackAgendasError):
    """A token that does not verify: forged, altered, expired, or made for another purpose.

    The message says which, in words safe to log (never the token itself).
    """


def security_headers(*, cache: bool = False) -> tuple[tuple[str, str], ...]:
    """The headers every page carries; ``cache`` allows caching (static files only)."""
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cache-Control", "private, max-age=3600" if cache else "no-store"),
    ]
    return tuple(headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadToken("the token is not well formed") from exc


class Signer:
    """Makes and checks purpose-bound, expiring tokens with HMAC-SHA256 over ``secret``.

    A token reads ``PAYLOAD.MAC`` (URL-safe base64, no padding), safe in a URL
    path or query and in a cookie. The payload is JSON with the purpose, the
    subject and the expiry (Unix seconds); it is signed, not encrypted, so put
    nothing secret in a subject.
    """

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(f"a signing secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = raw

    @classmethod
    def ephemeral(cls) -> Signer:
        """A signer with a random secret: its tokens die with this process."""
        return cls(secrets.token_bytes(32))

    def _key(self, purpose: str) -> bytes:
        if not _PURPOSE.match(purpose):
            raise ValueError("a purpose is a short lowercase code such as 'opt-out'")
        return hmac.new(self._secret, b"feedback-agendas/" + purpose.encode(), "sha256").digest()

    def mac(self, purpose: str, message: str) -> str:
        """A MAC of ``message`` under ``purpose``'s key (for values that need no expiry)."""
        return _b64(hmac.new(self._key(purpose), message.encode("utf-8"), "sha256").digest())

    def sign(self, purpose: str, subject: str, *, now: datetime, ttl: timedelta) -> str:
        """A token saying ``subject`` for ``purpose`` until ``now + ttl``."""
        expires = int((now + ttl).timestamp())
        payload = json.dumps(
            {"p": purpose, "s": subject, "e": expires}, separators=(",", ":"), sort_keys=True
        ).encode("utf-8")
        body = _b64(payload)
        return f"{body}.{_b64(hmac.new(self._key(purpose), body.encode(), 'sha256').digest())}"

    def verify(self, token: str, purpose: str, *, now: datetime) -> str:
        """The subject of ``token``; raises :class:`BadToken` unless it is ours, for
        ``purpose``, unaltered and not expired at ``now``."""
        body, dot, mac = token.partition(".")
        if not dot or not body or not mac or len(token) > 4096:
            raise BadToken("the token is not well formed")
        expected = hmac.new(self._key(purpose), body.encode("ascii", "replace"), "sha256").digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            raise BadToken("the token's signature does not match (forged, altered or elsewhere)")
        try:
            payload = json.loads(_unb64(body))
            got_purpose, subject, expires = payload["p"], payload["s"], payload["e"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadToken("the token is not well formed") from exc
        if got_purpose != purpose or not isinstance(subject, str):
            raise BadToken("the token was made for something else")
        if not isinstance(expires, int) or now.timestamp() >= expires:
            raise BadToken("the token has expired")
        return subject


# -- cookies -------------------------------------------------------------------


def cookie_header(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    path: str = "/",
    secure: bool = False,
    same_site: str = "Strict",
) -> tuple[str, str]:
    """A ``Set-Cookie`` header: HttpOnly, SameSite, scoped to ``path``; ``max_age=0`` deletes.

    ``secure`` adds the Secure flag: set it when the pages are served over
    HTTPS (a reverse proxy), so the cookie never travels in clear.
    """
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = path
    morsel["httponly"] = True
    morsel["samesite"] = same_site
    if secure:
        morsel["secure"] = True
    if max_age is not None:
        morsel["max-age"] = max_age
    return ("Set-Cookie", morsel.OutputString())


def read_cookies(headers: Mapping[str, str]) -> dict[str, str]:
    """The request's cookies by name; a malformed Cookie header counts as none."""
    raw = next((v for k, v in headers.items() if k.lower() == "cookie"), "")
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in cookie.items()}


# -- CSRF ------------------------------------------------------------------------


CSRF_COOKIE = "fa_csrf"
CSRF_FIELD = "csrf"


class CsrfGuard:
    """Double-submit CSRF protection with a signed binding.

    The browser gets a random value in the ``fa_csrf`` cookie (HttpOnly,
    SameSite=Strict) the first time it loads a page with a form; each form
    carries ``MAC(cookie value, form purpose)`` in a hidden field. A POST is
    genuine when the field matches the cookie it came with. A form's token
    only works for its own purpose (a token from the opt-out page does not
    work on an admin form).
    """

    def __init__(self, signer: Signer, *, secure: bool = False, path: str = "/") -> None:
        self._signer = signer
        self._secure = secure
        self._path = path

    def browser_value(self, headers: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The browser's CSRF cookie value, and the header that sets it if it had none."""
        value = read_cookies(headers).get(CSRF_COOKIE, "")
        if re.fullmatch(r"[A-Za-z0-9_-]{32,64}", value):
            return value, ()
        value = secrets.token_urlsafe(32)
        header = cookie_header(CSRF_COOKIE, value, path=self._path, secure=self._secure)
        return value, (header,)

    def token(self, browser_value: str, purpose: str) -> str:
        """The hidden form field's value for ``purpose`` in this browser."""
        return self._signer.mac("csrf", f"{purpose}:{browser_value}")

    def check(self, headers: Mapping[str, str], form: Mapping[str, str], purpose: str) -> bool:
        """True when ``form`` carries the right token for the cookie that came with it."""
        value = read_cookies(headers).get(CSRF_COOKIE, "")
        sent = form.get(CSRF_FIELD, "")
        if not value or not sent:
            return False
        return hmac.compare_digest(sent.encode(), self.token(value, purpose).encode())


def digest(text: str) -> str:
    """A short SHA-256 digest of ``text`` (to bind a token to a value without showing it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
