"""The ``provider: microsoft`` entry of ``calendars[]``, its factory and ``PROVIDER``.

::

    calendars:
      - name: mona@example.com
        provider: microsoft
        owner: mona@example.com                # the mailbox
        tenant_id: contoso.onmicrosoft.com
        client_id: 11111111-2222-3333-4444-555555555555
        client_secret: ${MS_CLIENT_SECRET}      # or certificate: {path: app.pem, thumbprint: ...}
        write_mode: body                        # body | reminder
        # authority: https://login.microsoftonline.com
        # graph_endpoint: https://graph.microsoft.com/v1.0
        # ca_bundle: extra-ca.pem

Entries of one app registration share one :class:`GraphSession` (one token,
one connection pool, per-mailbox throttling) in a process.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import requests
from pydantic import Field, SecretStr, model_validator

from feedback_agendas.integrations.calendars.base import (
    BuildContext,
    CalendarConfig,
    ProviderFailure,
    ProviderSpec,
)
from feedback_agendas.integrations.calendars.microsoft_push import (
    MicrosoftPush,
    MicrosoftPushProvider,
)
from feedback_agendas.integrations.calendars.microsoft_session import (
    DEFAULT_AUTHORITY,
    DEFAULT_GRAPH,
    Certificate,
    GraphSession,
    shared_session,
)
from feedback_agendas.integrations.config_types import (
    FrozenModel,
    HttpUrl,
    NonEmptyStr,
    ProblemAt,
    RelativePath,
    path_kind,
)

UPDATE_WARNING = (
    "write_mode body: attendees receive one Outlook meeting update when an agenda is "
    "added to a meeting, and one more when its visible text changes (at most once a day); "
    "write_mode reminder writes no events"
)


class CertificateConfig(FrozenModel):
    """A PEM file with the app's private key and certificate, and the certificate's thumbprint."""

    path: RelativePath
    thumbprint: str = Field(pattern=r"^[0-9A-Fa-f]{40}$")


class GraphApp(FrozenModel):
    """An app registration's access to Graph: the keys every Microsoft entry shares.

    A calendar, a ``discover: microsoft_directory`` source and
    ``org.directory: {provider: microsoft}`` extend it; entries of one app
    share one :class:`GraphSession` in a process (:meth:`session`).
    """

    tenant_id: NonEmptyStr
    client_id: NonEmptyStr
    client_secret: SecretStr | None = None
    certificate: CertificateConfig | None = None
    authority: HttpUrl = DEFAULT_AUTHORITY
    graph_endpoint: HttpUrl = DEFAULT_GRAPH
    ca_bundle: RelativePath | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> GraphApp:
        if (self.client_secret is None) == (self.certificate is None):
            raise ProblemAt("client_secret", "give exactly one of client_secret and certificate")
        if self.client_secret is not None and not self.client_secret.get_secret_value().strip():
            raise ProblemAt("client_secret", "is empty (is the environment variable set?)")
        if not self.authority.startswith("https://"):
            raise ProblemAt("authority", "must be an https URL (msal refuses anything else)")
        if not re.fullmatch(r"[A-Za-z0-9.-]+", self.tenant_id):
            raise ProblemAt("tenant_id", "is a tenant id (a GUID) or a domain name")
        return self

    def problems_here(self) -> list[tuple[str, str]]:
        """The certificate file (a private key in it) and the extra CA file."""
        found: list[tuple[str, str]] = []
        if self.certificate is not None:
            path = self.certificate.path
            if path_kind(path) != "file":
                found.append(("certificate.path", f"file not found: {path}"))
            else:
                try:
                    text = path.read_text()
                except (OSError, UnicodeDecodeError):
                    found.append(("certificate.path", f"cannot read {path}"))
                else:
                    if "PRIVATE KEY" not in text:
                        found.append(("certificate.path", f"{path} holds no PEM private key"))
        if self.ca_bundle is not None and path_kind(self.ca_bundle) != "file":
            found.append(("ca_bundle", f"file not found: {self.ca_bundle}"))
        return found

    def app_settings(self) -> dict[str, Any]:
        """These keys as plain data, for an entry made from another (a discovered calendar)."""
        return {name: getattr(self, name) for name in GraphApp.model_fields}

    def session(self) -> GraphSession:
        """The process's session of this app registration."""
        secret = self.client_secret.get_secret_value() if self.client_secret else None
        certificate = (
            Certificate(Path(self.certificate.path), self.certificate.thumbprint)
            if self.certificate
            else None
        )
        credential = (
            hashlib.sha256(secret.encode()).hexdigest()
            if secret
            else f"{certificate.path}:{certificate.thumbprint}"
            if certificate
            else ""
        )
        key = (
            self.authority,
            self.tenant_id,
            self.client_id,
            self.graph_endpoint,
            str(self.ca_bundle or ""),
            credential,
        )
        return shared_session(
            key,
            lambda: GraphSession(
                tenant_id=self.tenant_id,
                client_id=self.client_id,
                client_secret=secret,
                certificate=certificate,
                authority=self.authority,
                graph_endpoint=self.graph_endpoint,
                ca_bundle=self.ca_bundle,
            ),
        )


class MicrosoftCalendar(GraphApp, CalendarConfig):
    """A Microsoft 365 mailbox's calendar through Microsoft Graph (app-only access)."""

    provider: Literal["microsoft"]
    write_mode: Literal["body", "reminder"] = "body"
    window_days: int = Field(default=60, ge=2, le=400)

    def warnings(self) -> list[str]:
        """Body mode costs attendees one meeting update per agenda added."""
        return [UPDATE_WARNING] if self.write_mode == "body" else []


def build_microsoft(config: MicrosoftCalendar, context: BuildContext) -> MicrosoftPushProvider:
    """The provider for one entry, on the session of its app registration (push included)."""
    return MicrosoftPushProvider(
        name=config.name,
        owner=config.owner,
        session=config.session(),
        write_mode=config.write_mode,
        window_days=config.window_days,
        now=context.now,
    )


def classify_failure(exc: BaseException) -> ProviderFailure | None:
    """Transport errors of requests that escaped translation; msal's own refusals are ours."""
    if isinstance(exc, requests.exceptions.SSLError):
        return ProviderFailure(
            "network",
            "the TLS certificate of a Microsoft endpoint was not trusted",
            "set ca_bundle when a proxy or a private cloud uses its own certificate authority",
        )
    if isinstance(exc, requests.RequestException):
        return ProviderFailure(
            "network", f"a Microsoft endpoint could not be reached ({type(exc).__name__})"
        )
    return None


PROVIDER = ProviderSpec(
    name="microsoft",
    config=MicrosoftCalendar,
    build=build_microsoft,
    push=MicrosoftPush(),
    classify_failure=classify_failure,
)
