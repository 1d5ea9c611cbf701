"""Build the Google Calendar client: credentials, the service object and the batch URI.

The real ``google-api-python-client`` is used unchanged; ``api_endpoint``
points it at a proxy or at the local API in the test tree. Credentials are
loaded here and nowhere else, and never logged: error messages name the
file, not its content.
"""

from __future__ import annotations

import ipaddress
import json
import stat
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import click
import httplib2
from google.auth.credentials import AnonymousCredentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc

from feedback_agendas.agendas.errors import UserError

# The only scope we ask for: read events and patch their descriptions.
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events"
DEFAULT_ENDPOINT = "https://www.googleapis.com/calendar/v3/"
DEFAULT_TIMEOUT = 30.0

CredentialsSetting = Literal["anonymous"] | Path


@lru_cache(maxsize=4)
def _discovery_document(api: str, version: str) -> dict[str, Any]:
    """The discovery document shipped with the client, parsed once per process.

    ``build()`` re-reads and re-parses it for every service; with thousands of
    calendars that parse dominates start-up.
    """
    text = get_static_doc(api, version)
    if text is None:  # pragma: no cover - the pinned client ships it
        raise RuntimeError(f"no static discovery document for {api} {version}")
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def is_loopback_endpoint(endpoint: str) -> bool:
    """True when ``endpoint`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_private_file(path: Path) -> None:
    """Refuse a key or token file that other users can read (or that is missing)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise UserError(f"cannot read credentials file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            f"credentials file {path} is readable by other users; run: chmod 600 {path}"
        )


def load_credentials(
    setting: CredentialsSetting | str,
    *,
    subject: str | None,
    api_endpoint: str | None,
    scopes: tuple[str, ...] = (CALENDAR_SCOPE,),
) -> Any:
    """Credentials (a ``google.auth.credentials.Credentials``) for one user.

    ``setting`` is ``"anonymous"`` (only for a loopback ``api_endpoint``), a
    service-account key file (domain-wide delegation; ``subject`` is the user
    to impersonate), or an authorized-user token file written by
    :func:`run_installed_app_flow`.
    """
    if str(setting) == "anonymous":
        if not api_endpoint or not is_loopback_endpoint(api_endpoint):
            raise UserError("credentials: anonymous is only allowed with a loopback api_endpoint")
        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    path = Path(setting)
    check_private_file(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"credentials file {path} is not a readable JSON file") from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            if not subject:
                raise UserError(f"credentials file {path} is a service account: set subject")
            make_sa: Any = service_account.Credentials.from_service_account_info
            return make_sa(info, scopes=list(scopes)).with_subject(subject)
        if kind == "authorized_user":
            from google.oauth2 import credentials as user_credentials

            make_user: Any = user_credentials.Credentials.from_authorized_user_info
            return make_user(info, list(scopes))
    except ValueError:
        # The library's message may quote the key material: keep it out.
        raise UserError(f"credentials file {path} is malformed") from None
    raise UserError(
        f"credentials file {path} is neither a service-account key nor an OAuth token file"
    )


@dataclass(frozen=True, slots=True)
class GoogleClient:
    """What one provider needs: the shared resources, its own authorised http, the batch URI.

    ``events`` and ``channels`` are shared by every provider of the process
    and carry no credentials; every request is executed with ``http``.
    """

    events: Any
    channels: Any
    http: Any
    batch_uri: str


@lru_cache(maxsize=16)
def _shared_resources(endpoint: str) -> tuple[Any, Any]:
    """The ``events`` and ``channels`` resources for ``endpoint``, built once per process.

    The client generates every method (with docstrings) when a resource is
    built: about 10 ms and half a megabyte each time. Requests built from
    these resources are always executed with the provider's own ``http``,
    so the plain, credential-less http inside them is never used.
    """
    service = build_from_document(
        _discovery_document("calendar", "v3"),
        http=httplib2.Http(),
        client_options={"api_endpoint": endpoint},
    )
    return service.events(), service.channels()


def batch_uri_for(api_endpoint: str) -> str:
    """``http://host:port/calendar/v3/`` -> ``http://host:port/batch/calendar/v3``.

    ``service.new_batch_http_request()`` ignores ``api_endpoint``, so we derive
    the batch URI ourselves.
    """
    parts = urlsplit(api_endpoint)
    prefix = parts.path
    marker = "/calendar/v3"
    base = prefix[: prefix.index(marker)] if marker in prefix else prefix.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{base}/batch/calendar/v3"


def build_calendar_client(
    credentials: Any,
    *,
    api_endpoint: str | None = None,
    http: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> GoogleClient:
    """The Calendar v3 client for one user, from the static discovery document.

    ``http`` (an ``httplib2.Http``) is injectable for tests; credentials are
    applied on top of it.
    """
    endpoint = api_endpoint or DEFAULT_ENDPOINT
    if "/calendar/v3" not in endpoint:
        raise UserError("api_endpoint must end with /calendar/v3/")
    if not endpoint.endswith("/"):
        endpoint += "/"
    base_http = http if http is not None else httplib2.Http(timeout=timeout)
    authed = AuthorizedHttp(credentials, http=base_http)
    events, channels = _shared_resources(endpoint)
    return GoogleClient(
        events=events, channels=channels, http=authed, batch_uri=batch_uri_for(endpoint)
    )


def run_installed_app_flow(client_secrets: Path, token_out: Path) -> Path:
    """Run Google's installed-app OAuth flow for one user and save the token file.

    Opens a browser (or prints a URL) and listens on a loopback port for the
    redirect. The token file is created with mode 0600. Returns its path.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    check_private_file(client_secrets)
    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), [CALENDAR_SCOPE])
    creds = flow.run_local_server(host="127.0.0.1", port=0, open_browser=True)
    write_private_file(token_out, creds.to_json())
    return token_out


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (created 0600, never widened)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def credentials_problem(
    setting: object, *, subject: str | None, api_endpoint: str | None, scopes: tuple[str, ...]
) -> str | None:
    """Load the credentials as the providers do; their refusal, in their words.

    Reads the file only: no token is fetched (``check-config`` runs offline).
    """
    if setting == "anonymous":
        return None
    try:
        load_credentials(str(setting), subject=subject, api_endpoint=api_endpoint, scopes=scopes)
    except UserError as exc:
        return str(exc)
    except Exception as exc:  # the library refused the file in a way we did not foresee
        return f"credentials file {setting} cannot be loaded ({type(exc).__name__})"
    return None


@click.command("google-auth")
@click.option(
    "--client-secrets",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The OAuth client file (installed app) from the Google Cloud console.",
)
@click.option(
    "--token-out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to save the user's token (created readable by you only).",
)
def google_auth_command(client_secrets: Path, token_out: Path) -> None:
    """Authorise one Google user (installed-app flow) and save the token file."""
    try:
        saved = run_installed_app_flow(client_secrets, token_out)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"saved the token to {saved}; use it as the calendar's `credentials`")
