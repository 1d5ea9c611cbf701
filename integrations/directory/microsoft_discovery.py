"""The active people of a Microsoft 365 tenant, from Entra ID through Microsoft Graph.

``discover: microsoft_directory`` lists ``/users`` (999 per page, the most
Graph gives), or the members of groups (``/groups/{id}/transitiveMembers``,
nested groups included; a group is named by its id or its mail). An active
person is an enabled member user with a mail: disabled accounts, guests and
users without a mailbox are left out. Each person becomes a ``microsoft``
calendar named by their address, with the source's app keys and
``write_mode``.

Each person's manager comes from ``/users/{id}/manager`` (a 404 means none),
asked in ``$batch``es of 20, so the teams (a manager and their direct
reports) come with the list: 5,000 people cost 6 pages and 251 batches
(``python -m bench.microsoft_discovery``).
Everything goes through the app's :class:`GraphSession` (one token, retries
on 429/503 with ``Retry-After``). The app needs ``User.Read.All``, and
``GroupMember.Read.All`` when groups are named.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator

from feedback_agendas.agendas.errors import NotFound
from feedback_agendas.integrations.calendars.microsoft_config import GraphApp
from feedback_agendas.integrations.calendars.microsoft_session import GraphSession, raise_for
from feedback_agendas.integrations.directory.discovery import SourceConfig
from feedback_agendas.integrations.directory.microsoft import (
    DIRECTORY_KEY,
    PAGE_SIZE,
    USER_FIELDS,
    DirectoryPages,
    active_address,
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_MAIL = re.compile(r"^[^@\s'/?#]+@[^@\s'/?#]+\.[^@\s'/?#]+$")


def _check_group(value: str) -> str:
    if not (_GUID.match(value) or _MAIL.match(value)):
        raise ValueError("name a group by its object id (a GUID) or its mail address")
    return value


GroupRef = Annotated[str, AfterValidator(_check_group)]


class MicrosoftDirectorySource(GraphApp, SourceConfig):
    """``discover: microsoft_directory``: every enabled user of a tenant (or of some groups)."""

    discover: Literal["microsoft_directory"]
    groups: tuple[GroupRef, ...] = ()
    write_mode: Literal["body", "reminder"] = "body"

    def scope(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id.lower(),
            "groups": sorted(g.lower() for g in self.groups),
        }


class MicrosoftDirectoryPeople:
    """Enabled users of a tenant (optionally only some groups' members), as the app."""

    config = MicrosoftDirectorySource

    def __init__(self, *, session: GraphSession | None = None, **settings: Any) -> None:
        source = MicrosoftDirectorySource.model_validate(
            {"discover": "microsoft_directory", **settings}
        )
        self._groups = source.groups
        self._pages = DirectoryPages(session or source.session())
        self.managers: dict[str, str] = {}

    @property
    def requests(self) -> int:
        return self._pages.requests

    def active_people(self) -> frozenset[str]:
        """Every active person in scope (lower case), and :attr:`managers` of them."""
        found: dict[str, str] = {}  # address -> user id
        if not self._groups:
            found.update(self._users(f"users?$select={USER_FIELDS}&$top={PAGE_SIZE}", "users"))
        for group in self._groups:
            path = (
                f"groups/{quote(self._group_id(group))}/transitiveMembers"
                f"?$select={USER_FIELDS}&$top={PAGE_SIZE}"
            )
            found.update(self._users(path, "transitiveMembers"))
        self.managers = self._managers(found)
        return frozenset(found)

    def _users(self, path: str, kind: str) -> Iterator[tuple[str, str]]:
        for item in self._pages.items(path, kind):
            address = active_address(item)
            if address and item.get("id"):
                yield address, str(item["id"])

    def _group_id(self, group: str) -> str:
        """A group's object id; one named by its mail is looked up (NotFound if none)."""
        if _GUID.match(group):
            return group
        answer = self._pages.get(
            f"groups?$filter=mail eq '{group.lower()}'&$select=id&$top=1", "groups"
        )
        for item in answer.get("value") or ():
            if isinstance(item, dict) and item.get("id"):
                return str(item["id"])
        raise NotFound("graph groups: no group has the mail named in groups")

    def _managers(self, people: Mapping[str, str]) -> dict[str, str]:
        """person -> their manager's address, where Entra names an active one."""
        calls = [
            {
                "id": str(n),
                "method": "GET",
                "url": f"/users/{quote(ident, safe='')}/manager?$select={USER_FIELDS}",
            }
            for n, ident in enumerate(people.values())
        ]
        if not calls:
            return {}
        self._pages.requests += (len(calls) + 19) // 20
        answers = self._pages.session.batch(DIRECTORY_KEY, calls, kind="manager")
        managers: dict[str, str] = {}
        for n, address in enumerate(people):
            reply = answers[str(n)]
            if reply.status == 404:  # nobody is this person's manager
                continue
            raise_for(reply, "manager")
            manager = active_address(reply.body)
            if manager and manager != address:
                managers[address] = manager
        return managers

    @classmethod
    def calendar_entry(cls, settings: Mapping[str, Any], address: str) -> dict[str, Any]:
        """A ``microsoft`` calendar for ``address``: the source's app keys and write mode."""
        entry: dict[str, Any] = {
            "provider": "microsoft",
            "name": address,
            "owner": address,
            "write_mode": settings.get("write_mode", "body"),
        }
        for key in GraphApp.model_fields:
            if settings.get(key) is not None:
                entry[key] = settings[key]
        return entry

    def close(self) -> None:
        """Nothing of its own: the session is shared with the app's calendars."""
