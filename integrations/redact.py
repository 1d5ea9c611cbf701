"""Keeping credentials that ride in URLs out of logs, messages and reprs.

A URL may carry a password (``postgresql://app:PASSWORD@db/fa``,
``http://mona:PASSWORD@dav.example.com/``) or a token as its user
(``https://TOKEN@host/``). Every URL we log, print or put in an error goes
through :func:`mask_url` (or :func:`mask_urls_in` for free text); a client
library gets its credentials apart from the URL (:func:`split_userinfo`), so
that its own DEBUG logging never sees them either.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
# Up to the next whitespace: a quote may be part of a raw password, and a closing
# quote swallowed into the match only ends up in the unmasked tail.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def _parts(url: str, ends_at: str = "/?#") -> tuple[str, str, str, str] | None:
    """(scheme, userinfo, host, tail) of a URL with userinfo, else None.

    The authority ends at the first of ``ends_at``: ``/?#`` splits as urlsplit
    and HTTP clients do; masking ends it at ``/`` only, so that a password
    with a raw ``#`` or ``?`` is masked whole (masking too much is harmless).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    ends = [i for i in (rest.find(c) for c in ends_at) if i >= 0]
    end = min(ends, default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at:
        return None
    return scheme, userinfo, host, rest[end:]


def mask_url(url: str) -> str:
    """``url`` with its userinfo masked: ``user:***@host`` with a password, else ``***@host``.

    A user alone is masked whole: it is often a token. A URL without userinfo
    comes back unchanged. Never raises, whatever the text.
    """
    parts = _parts(url, ends_at="/")
    if parts is None:
        return url
    scheme, userinfo, host, tail = parts
    user, colon, _password = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}://{masked}@{host}{tail}"


def mask_urls_in(text: str) -> str:
    """``text`` with every URL in it masked by :func:`mask_url` (a URL ends at whitespace)."""
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


def split_userinfo(
    url: str, username: str | None, password: str | None
) -> tuple[str, str | None, str | None]:
    """(url without userinfo, username, password), for a client that must not log them.

    Explicit settings win: an explicit ``username`` discards the URL's
    credentials whole (they belong to another account); otherwise the URL's
    user is taken, and its password unless ``password`` is given.
    """
    parts = _parts(url)
    if parts is None:
        return url, username, password
    scheme, userinfo, host, tail = parts
    if username is None:
        user, colon, url_password = userinfo.partition(":")
        username = unquote(user)
        if password is None and colon:
            password = unquote(url_password)
    return f"{scheme}://{host}{tail}", username, password
