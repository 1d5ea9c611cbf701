"""Rendering the daemon's web pages: one Jinja2 environment, the stylesheet, forms, redirects.

Pages are HTML rendered on the server from ``templates/web/`` and work
without JavaScript. Every response made here carries
:func:`~feedback_agendas.scheduler.service.web.security.security_headers`.

The environment is built once (autoescaping, ``StrictUndefined``) and passed
in. It is not sandboxed: these templates ship with the package (an admin
cannot replace them), and the sandbox's checks on every attribute took half
of a page's render time. Values are escaped, never trusted as markup.
Templates extend ``base.html.j2``, which links the stylesheet served by
:meth:`WebPages.static` (no inline style: the Content-Security-Policy forbids
it).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import feedback_agendas
from feedback_agendas.scheduler.service.http_server import Request, Response
from feedback_agendas.scheduler.service.web.security import security_headers

WEB_TEMPLATES = Path(feedback_agendas.__file__).resolve().parent / "templates" / "web"
STATIC = WEB_TEMPLATES / "static"
HTML = "text/html; charset=utf-8"
# A form post is a few fields; anything larger is refused before it is read.
MAX_FORM_BODY = 16 * 1024


def web_environment(folder: Path = WEB_TEMPLATES) -> Environment:
    """The Jinja2 environment of the web pages: autoescaped and strict."""
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    return env


class WebPages:
    """Renders templates into responses with the security headers; serves the static files.

    ``prefix`` is where the pages live (``/admin`` or ``/opt-out``); templates
    get it as ``prefix``, and ``static_url`` for the stylesheet's folder.
    """

    def __init__(
        self,
        env: Environment | None = None,
        *,
        static_prefix: str = "/static/",
        static_folder: Path = STATIC,
    ) -> None:
        self.env = env or web_environment()
        self.static_prefix = static_prefix
        self._static_folder = static_folder.resolve()

    def render(
        self,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        """Template ``template`` rendered with ``context`` as an HTML response."""
        page = self.env.get_template(template).render(
            static_url=self.static_prefix, **dict(context)
        )
        return Response(status, page.encode("utf-8"), HTML, security_headers() + headers)

    def static(self, request: Request) -> Response:
        """A file of the static folder by its name after ``static_prefix``; 404 otherwise.

        Only plain names (no folders, no dot files) are served.
        """
        name = request.path.removeprefix(self.static_prefix)
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return not_found()
        path = self._static_folder / name
        if not path.is_file():
            return not_found()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        return Response(200, path.read_bytes(), content_type, security_headers(cache=True))


def not_found() -> Response:
    return Response(404, b"not found\n", headers=security_headers())


def redirect(location: str, *, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """``303 See Other`` to ``location`` (a path on this server): a POST's answer."""
    if not location.startswith("/") or location.startswith("//"):
        raise ValueError("redirect only to a path on this server")
    return Response(303, b"", "text/plain", (*security_headers(), ("Location", location), *headers))


def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (the last of repeats)."""
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=100))


def read_query(request: Request) -> dict[str, str]:
    """The query string's fields (the last of repeats)."""
    return dict(parse_qsl(request.query, keep_blank_values=True, max_num_fields=50))
