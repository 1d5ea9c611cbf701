"""Managers and their reports from Microsoft Entra ID, through Microsoft Graph.

``org.directory: {provider: microsoft, tenant_id: ..., client_id: ...,
client_secret: ...}`` (the same app keys as a ``provider: microsoft``
calendar) reads ``GET /users/{manager}/directReports``: each enabled user
with a mail among them is a report. A manager Entra does not know (404) has
no reports. The app needs the application permission ``User.Read.All``.
Teams in the config win where both name a team for a manager.

:class:`DirectoryPages` is the one way these lookups and the people
discovery (:mod:`.microsoft_discovery`) list directory objects: through the
app's :class:`GraphSession` (token, throttling, retries), ``$top=999`` and
``$select``, following ``@odata.nextLink``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import quote

from feedback_agendas.agendas.errors import NotFound, ProviderError
from feedback_agendas.integrations.calendars.microsoft_config import GraphApp
from feedback_agendas.integrations.calendars.microsoft_session import GraphSession
from feedback_agendas.integrations.directory.base import (
    DirectoryConfig,
    DirectorySpec,
    ManagerReports,
)

PAGE_SIZE = 999  # the most Graph gives per page of directory objects
# Only what we decide on: no names, titles or phone numbers cross the wire.
USER_FIELDS = "id,mail,accountEnabled,userType"
# Directory calls are counted apart from every mailbox (the session's per-mailbox budget).
DIRECTORY_KEY = "directory"


def active_address(item: Mapping[str, Any]) -> str | None:
    """The mail of an enabled member user (lower case); None for anyone else.

    Left out: disabled accounts, users without a mail (no mailbox), guests
    (their calendar is in another tenant), and objects that are not users
    (groups, contacts, devices among a group's members).
    """
    kind = item.get("@odata.type")
    if kind is not None and kind != "#microsoft.graph.user":
        return None
    mail = str(item.get("mail") or "").strip().lower()
    if not mail or item.get("accountEnabled") is not True or item.get("userType") == "Guest":
        return None
    return mail


class DirectoryPages:
    """Listing calls of one app registration, counted (:attr:`requests`)."""

    def __init__(self, session: GraphSession) -> None:
        self.session = session
        self.requests = 0

    def get(self, path: str, kind: str) -> dict[str, Any]:
        self.requests += 1
        return dict(self.session.call("GET", path, mailbox=DIRECTORY_KEY, kind=kind).body)

    def items(self, path: str, kind: str) -> Iterator[dict[str, Any]]:
        """Every item of every page, from ``path`` on (``$top`` and ``$select`` in it)."""
        followed: set[str] = set()
        url: str | None = path
        while url:
            followed.add(url)
            page = self.get(url, kind)
            for item in page.get("value") or ():
                if isinstance(item, dict):
                    yield item
            url = page.get("@odata.nextLink")
            if url in followed:
                raise ProviderError(f"graph {kind}: a nextLink repeated")


class MicrosoftDirectory:
    """Direct reports from ``/users/{id}/directReports``, as the app."""

    def __init__(self, session: GraphSession) -> None:
        self._pages = DirectoryPages(session)

    @property
    def requests(self) -> int:
        return self._pages.requests

    def reports_of(self, manager: str) -> ManagerReports:
        """Every enabled direct report of ``manager`` (all pages); none for a stranger to Entra."""
        path = (
            f"users/{quote(manager.lower(), safe='@')}/directReports"
            f"?$select={USER_FIELDS}&$top={PAGE_SIZE}"
        )
        reports: set[str] = set()
        try:
            for item in self._pages.items(path, "directReports"):
                address = active_address(item)
                if address:
                    reports.add(address)
        except NotFound:
            pass
        return ManagerReports(manager.lower(), frozenset(reports))

    def close(self) -> None:
        """Nothing of its own: the session is shared with the app's calendars."""


class MicrosoftDirectoryConfig(GraphApp, DirectoryConfig):
    """Where to learn who manages whom: Entra ID through Graph (the app's keys)."""

    provider: Literal["microsoft"]


def build_microsoft_directory(config: MicrosoftDirectoryConfig) -> MicrosoftDirectory:
    """The Entra ID reader for ``org.directory``, on the app's shared session."""
    return MicrosoftDirectory(config.session())


DIRECTORY = DirectorySpec(
    name="microsoft", config=MicrosoftDirectoryConfig, build=build_microsoft_directory
)
