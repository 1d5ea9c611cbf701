"""The active people of a Google Workspace domain, from the Admin SDK Directory.

``discover: google_directory`` lists users with ``users.list`` (500 per page,
the most the API gives), either the whole domain or one query per org unit
(``orgUnitPath='/Engineering'`` matches the unit and the units below it), and
the members of groups with ``members.list`` (200 per page, nested groups
included). Suspended and archived users are not active. A user's
``manager`` relation comes with the same pages, so the teams (a manager and
their direct reports) cost no request of their own. Each person found
becomes a Google calendar named by their address, read with the same
service-account key impersonating that person (domain-wide delegation).

Scopes: ``admin.directory.user.readonly``, and
``admin.directory.group.member.readonly`` when groups are named. The subject
is an admin who may read the directory.

``api_endpoint`` (tests, dry runs) is the root of a local stand-in of Google's
APIs: the directory is asked there, the calendars below it at
``calendar/v3/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

import httplib2
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from pydantic import AfterValidator, Field, model_validator

from feedback_agendas.integrations.calendars.google_client import load_credentials
from feedback_agendas.integrations.config_types import (
    Credentials,
    Domain,
    Email,
    HttpUrl,
    ProblemAt,
    is_loopback_url,
)
from feedback_agendas.integrations.directory.discovery import SourceConfig
from feedback_agendas.integrations.directory.google import DirectoryCalls
from feedback_agendas.integrations.retry import DEFAULT_POLICY, RetryPolicy

USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
GROUP_MEMBER_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"
DEFAULT_ENDPOINT = "https://admin.googleapis.com/"
USERS_PER_PAGE = 500  # users.list's maximum
MEMBERS_PER_PAGE = 200  # members.list's maximum
# Only what we decide on: no names, photos or phone numbers cross the wire.
USER_FIELDS = "nextPageToken,users(primaryEmail,suspended,archived,relations)"
MEMBER_FIELDS = "nextPageToken,members(email,type,status)"


@lru_cache(maxsize=4)
def _directory_service(endpoint: str) -> Any:
    text = get_static_doc("admin", "directory_v1")
    assert text is not None
    return build_from_document(
        json.loads(text), http=httplib2.Http(), client_options={"api_endpoint": endpoint}
    )


def _manager_of(user: dict[str, Any]) -> str | None:
    """The address in a user's ``manager`` relation (what directManager queries match)."""
    relations = user.get("relations")
    for relation in relations if isinstance(relations, list) else ():
        if isinstance(relation, dict) and relation.get("type") == "manager":
            value = str(relation.get("value") or "").strip().lower()
            if "@" in value:
                return value
    return None


def _check_org_unit(value: str) -> str:
    if not value.startswith("/") or "'" in value or any(ch < " " for ch in value):
        raise ValueError("an org unit path starts with '/' (such as /Engineering) and has no quote")
    return value


OrgUnitPath = Annotated[str, AfterValidator(_check_org_unit)]


class GoogleDirectorySource(SourceConfig):
    """``discover: google_directory``: every active person of a Workspace domain.

    Each person found becomes a Google calendar read with the shared
    ``credentials`` impersonating that person.
    """

    discover: Literal["google_directory"]
    credentials: Credentials
    subject: Email | None = None
    domain: Domain | None = None
    org_units: tuple[OrgUnitPath, ...] = ()
    groups: tuple[Email, ...] = ()
    api_endpoint: HttpUrl | None = None
    batch_size: int | None = Field(default=None, ge=1, le=1000)
    writes_per_minute: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> GoogleDirectorySource:
        if self.credentials == "anonymous" and not is_loopback_url(self.api_endpoint):
            raise ProblemAt(
                "credentials", "'anonymous' is allowed only with an api_endpoint on this machine"
            )
        return self

    def source_settings(self) -> dict[str, Any]:
        settings = super().source_settings()
        settings["credentials"] = str(self.credentials)
        return settings

    def scope(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "org_units": sorted(self.org_units),
            "groups": sorted(g.lower() for g in self.groups),
        }

    def may_list(self, address: str) -> bool:
        return self.domain in (None, address.rpartition("@")[2].lower())


class GoogleDirectoryPeople:
    """Active users of a domain (optionally only some org units or groups), as one admin."""

    config = GoogleDirectorySource

    def __init__(
        self,
        *,
        credentials: str,
        subject: str | None = None,
        domain: str | None = None,
        org_units: Iterable[str] = (),
        groups: Iterable[str] = (),
        api_endpoint: object | None = None,
        batch_size: int | None = None,
        writes_per_minute: int | None = None,
        http: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        endpoint = str(api_endpoint) if api_endpoint else DEFAULT_ENDPOINT
        self._domain = domain.lower() if domain else None
        self._org_units = tuple(org_units)
        self._groups = tuple(groups)
        scopes = (USER_SCOPE, GROUP_MEMBER_SCOPE) if self._groups else (USER_SCOPE,)
        # batch_size and writes_per_minute belong to the calendars (calendar_entry).
        del batch_size, writes_per_minute
        creds = load_credentials(
            str(credentials), subject=subject, api_endpoint=endpoint, scopes=scopes
        )
        self._calls = DirectoryCalls(
            AuthorizedHttp(creds, http=http or httplib2.Http(timeout=30)),
            sleep=sleep,
            clock=clock,
            policy=retry_policy,
        )
        service = _directory_service(endpoint)
        self._users, self._members = service.users(), service.members()
        self.managers: dict[str, str] = {}

    def active_people(self) -> frozenset[str]:
        """Every active user in scope (lower case); the whole domain when no scope is named."""
        found: set[str] = set()
        if not self._org_units and not self._groups:
            found.update(self._list_users(None))
        for unit in self._org_units:
            found.update(self._list_users(f"orgUnitPath='{unit}'"))
        for group in self._groups:
            found.update(self._list_members(group))
        if self._domain:
            found = {a for a in found if a.rpartition("@")[2] == self._domain}
        return frozenset(found)

    @classmethod
    def calendar_entry(cls, settings: Mapping[str, Any], address: str) -> dict[str, Any]:
        """A Google calendar for ``address``: the shared key, impersonating that person."""
        entry: dict[str, Any] = {
            "provider": "google",
            "name": address,
            "owner": address,
            "credentials": str(settings["credentials"]),
            "subject": address,
        }
        for key in ("batch_size", "writes_per_minute"):
            if settings.get(key) is not None:
                entry[key] = settings[key]
        if settings.get("api_endpoint"):
            # One local stand-in of Google's APIs: the directory at its root,
            # Calendar v3 below it (as Google serves it under www.googleapis.com).
            entry["api_endpoint"] = str(settings["api_endpoint"]).rstrip("/") + "/calendar/v3/"
        return entry

    def _list_users(self, query: str | None) -> Iterator[str]:
        page: str | None = None
        while True:
            params: dict[str, Any] = {
                "maxResults": USERS_PER_PAGE,
                "pageToken": page,
                "fields": USER_FIELDS,
            }
            if query:
                params["query"] = query
            if self._domain:
                params["domain"] = self._domain
            else:
                params["customer"] = "my_customer"
            answer = self._call(self._users, "users.list", params)
            for user in answer.get("users") or ():
                email = str(user.get("primaryEmail", "")).lower()
                if email and not user.get("suspended") and not user.get("archived"):
                    manager = _manager_of(user)
                    if manager:
                        self.managers[email] = manager
                    yield email
            page = answer.get("nextPageToken")
            if not page:
                return

    def _list_members(self, group: str) -> Iterator[str]:
        page: str | None = None
        while True:
            params: dict[str, Any] = {
                "groupKey": group,
                "maxResults": MEMBERS_PER_PAGE,
                "pageToken": page,
                "includeDerivedMembership": True,
                "fields": MEMBER_FIELDS,
            }
            answer = self._call(self._members, "members.list", params)
            for member in answer.get("members") or ():
                email = str(member.get("email", "")).lower()
                if email and member.get("type") == "USER" and member.get("status") == "ACTIVE":
                    yield email
            page = answer.get("nextPageToken")
            if not page:
                return

    def _call(self, resource: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._calls.list(resource, operation, params)

    @property
    def requests(self) -> int:
        return self._calls.requests

    def close(self) -> None:
        self._calls.close()
