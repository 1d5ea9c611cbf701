"""The WebDAV requests of the CalDAV provider, with hrefs kept as the server sent them.

The ``caldav`` library re-quotes every href it handles (``quote(unquote(x))``)
and joins resource names onto the collection URL: a resource named
``with%20space.ics`` becomes a URL with a space in it, ``a%3Fb.ics`` becomes a
query string, and the event is lost or the whole sync fails. So the provider
speaks the few WebDAV requests it needs itself, over one HTTP session:

- an href is resolved against the URL of the request that returned it
  (:func:`resolve_href`) and never decoded and rebuilt; only characters that
  may not appear in a URL at all (a raw space, non-ASCII) are percent-encoded;
- :class:`DavSession` sends each request, counts it by method, sends the
  credentials with the first request over TLS or to a loopback address (no 401
  round trip), negotiates Basic or Digest on a 401 otherwise, and translates
  transport errors into :mod:`feedback_agendas.agendas.errors`;
- :func:`parse_multistatus` reads a 207 body into :class:`DavResponse` items.

Nothing here logs a body, a description or a credential.
"""

from __future__ import annotations

import ipaddress
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import caldav.davclient

from feedback_agendas.agendas.errors import (
    FeedbackAgendasError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    TransientError,
)

log = logging.getLogger(__name__)

# The HTTP library caldav was built with (niquests, or requests as a fallback).
http: Any = getattr(caldav.davclient, "requests")  # noqa: B009

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"

# Characters left as they are when a URL is made safe to send: every reserved
# and unreserved character, and "%" so that existing escapes stay exactly as sent.
_URL_SAFE = "%/:=&?~#+!$,;'@()*[]-._"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def resolve_href(base: str, href: str) -> str:
    """``href`` as an absolute URL, resolved against ``base``; escapes are kept as sent.

    A relative href whose first segment holds a colon (``a:b.ics``, which a
    careless server may send) would read as a URL scheme; it is taken as the
    path it means.
    """
    href = href.strip()
    scheme = urlsplit(href).scheme.lower()
    if scheme and scheme not in ("http", "https"):
        href = "./" + href
    return sendable(urljoin(base, href))


def sendable(url: str) -> str:
    """Percent-encode only what a URL cannot carry (raw spaces, non-ASCII); keep the rest."""
    return quote(url, safe=_URL_SAFE)


def path_key(url: str) -> str:
    """A spelling-independent form of a URL's path, to *compare* two hrefs (never to send)."""
    return unquote(urlsplit(url).path).rstrip("/")


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class DavResponse:
    """One ``<response>`` of a multistatus.

    ``href`` is absolute (see :func:`resolve_href`); ``status`` is the
    response's own status (a removed member in a sync report, a 404 in a
    multiget) or None; ``props`` maps each property found with status 200 to
    its element.
    """

    href: str
    status: int | None
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, tag: str) -> str | None:
        element = self.props.get(tag)
        if element is None:
            return None
        return "".join(element.itertext())


@dataclass(frozen=True, slots=True)
class Multistatus:
    responses: list[DavResponse]
    sync_token: str | None


def parse_multistatus(body: bytes, base: str) -> Multistatus:
    """Parse a 207 body; hrefs are resolved against ``base`` (the request URL).

    Raises ProviderError when the body is not a multistatus.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ProviderError(f"unreadable multistatus ({exc.code})") from exc
    if root.tag != DAV + "multistatus":
        raise ProviderError("the server answered without a multistatus")
    responses = []
    for item in root.findall(DAV + "response"):
        href_el = item.find(DAV + "href")
        if href_el is None or not (href_el.text or "").strip():
            continue
        props: dict[str, ET.Element] = {}
        for propstat in item.findall(DAV + "propstat"):
            if _status_code(propstat.findtext(DAV + "status")) != 200:
                continue
            prop = propstat.find(DAV + "prop")
            for element in prop if prop is not None else ():
                props[element.tag] = element
        try:
            href = resolve_href(base, href_el.text or "")
        except ValueError:  # not a URL at all (say, a broken IPv6 host): nothing to name
            log.warning("skipped a multistatus response whose href is not a URL")
            continue
        responses.append(
            DavResponse(
                href=href,
                status=_status_code(item.findtext(DAV + "status")),
                props=props,
            )
        )
    token = root.findtext(DAV + "sync-token")
    return Multistatus(responses, token.strip() if token else None)


def _status_code(line: str | None) -> int | None:
    """200 from ``HTTP/1.1 200 OK``; None when absent or unreadable."""
    parts = (line or "").split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def status_error(status: int, what: str, headers: Any = None) -> FeedbackAgendasError:
    """The error of our tree for an HTTP status that is not a success."""
    if status in (401, 403):
        return PermissionDenied(f"{what}: {status}")
    if status in (404, 410):
        return NotFound(f"{what}: not found")
    if status == 412:
        return PreconditionFailed(f"{what}: the resource changed since it was read")
    if status == 429 or (status == 503 and headers is not None and "retry-after" in headers):
        return RateLimited(f"{what}: rate limited", retry_after=_retry_after(headers))
    if status >= 500:
        return TransientError(f"{what}: server error {status}")
    return ProviderError(f"{what}: HTTP {status}")


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class DavSession:
    """One HTTP session to a CalDAV server; every request is counted in ``requests``.

    Credentials go with the first request when the server is reached over TLS
    or on a loopback address. Over plain HTTP to another host they are sent
    only when the server asks (a 401 naming Basic or Digest), so that a
    password never crosses a network in clear text unasked.
    """

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        *,
        verify_tls: bool,
        timeout: float,
        requests: Counter[str],
        session: Any = None,
        auth: Any = None,
    ) -> None:
        self.requests = requests
        self._session = session if session is not None else http.Session()
        self._verify = verify_tls
        self._timeout = timeout
        self._username = username
        self._password = password
        self._auth = auth
        up_front = urlsplit(url).scheme == "https" or is_loopback(url)
        if self._auth is None and username is not None and password is not None and up_front:
            self._auth = http.auth.HTTPBasicAuth(username, password)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        what: str,
        follow_redirects: bool = False,
    ) -> Any:
        """Send one request and return the response, whatever its status.

        Raises TransientError on timeouts and connection failures.
        """
        response = self._send(method, url, body, headers, what, follow_redirects)
        if response.status_code == 401 and self._auth is None and self._negotiate(response):
            response = self._send(method, url, body, headers, what, follow_redirects)
        return response

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str] | None,
        what: str,
        follow_redirects: bool,
    ) -> Any:
        self.requests[method.lower()] += 1
        try:
            return self._session.request(
                method,
                sendable(url),
                data=body,
                headers=headers or {},
                auth=self._auth,
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=follow_redirects,
            )
        except (http.Timeout, http.ConnectionError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__}") from exc
        except http.RequestException as exc:
            raise TransientError(f"{what}: {type(exc).__name__}") from exc

    def _negotiate(self, response: Any) -> bool:
        """Pick the scheme a 401 names; False when we have nothing to answer it with."""
        if self._username is None or self._password is None:
            return False
        challenge = str(response.headers.get("www-authenticate", "")).lower()
        if challenge.startswith("digest") or ", digest" in challenge:
            self._auth = http.auth.HTTPDigestAuth(self._username, self._password)
        elif "basic" in challenge:
            self._auth = http.auth.HTTPBasicAuth(self._username, self._password)
        else:
            return False
        return True

    def close(self) -> None:
        self._session.close()
