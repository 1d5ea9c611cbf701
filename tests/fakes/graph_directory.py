"""Entra ID's users, groups and managers, as routes on the fake Graph (:mod:`.graph_api`).

::

    directory = GraphDirectory(graph)
    boss = directory.add_user("boss@example.com")
    directory.add_user("alice@example.com", manager="boss@example.com")

Served, each also inside ``$batch``:

- ``GET /v1.0/users``: every user, pages of ``$top`` (at most 999, else
  400) with ``@odata.nextLink``; only the ``$select``ed fields;
- ``GET /v1.0/groups?$filter=mail eq '...'`` and
  ``GET /v1.0/groups/{id}/transitiveMembers`` (nested groups flattened; the
  groups themselves listed too, as Graph does, typed ``#microsoft.graph.group``);
- ``GET /v1.0/users/{id or mail}/manager``: 404 ``Request_ResourceNotFound``
  for someone without one;
- ``GET /v1.0/users/{id or mail}/directReports``, paged.

A list call without ``$select`` is a :attr:`FakeGraph.violations` entry: we
promise to fetch only what we decide on. Requests are counted by kind
(``users``, ``groups``, ``transitiveMembers``, ``manager``, ``directReports``)
and fail with :meth:`FakeGraph.fail` of that kind.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from tests.fakes.graph_api import FakeGraph, Reply, Request, error

MAX_TOP = 999


@dataclass
class User:
    id: str
    mail: str | None
    enabled: bool = True
    user_type: str = "Member"
    manager: str | None = None  # the manager's id

    def shown(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.user",
            "id": self.id,
            "mail": self.mail,
            "accountEnabled": self.enabled,
            "userType": self.user_type,
            "displayName": f"Person {self.id}",  # never asked for: $select leaves it out
            "jobTitle": "Engineer",
        }


@dataclass
class Group:
    id: str
    mail: str
    members: list[str]  # user or group ids


class GraphDirectory:
    """The tenant's directory behind the fake Graph."""

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self._ids = itertools.count(1)
        self._pages: dict[str, list[dict[str, Any]]] = {}
        graph.route("GET", r"/v1\.0/users", self._list_users)
        graph.route("GET", r"/v1\.0/users/([^/]+)/manager", self._manager)
        graph.route("GET", r"/v1\.0/users/([^/]+)/directReports", self._direct_reports)
        graph.route("GET", r"/v1\.0/groups", self._find_groups)
        graph.route("GET", r"/v1\.0/groups/([^/]+)/transitiveMembers", self._members)

    # -- seeding ---------------------------------------------------------------

    def add_user(
        self,
        mail: str | None,
        *,
        enabled: bool = True,
        guest: bool = False,
        manager: str | None = None,
    ) -> str:
        ident = f"{next(self._ids):08x}-0000-4000-8000-{next(self._ids):012x}"
        boss = self.user(manager).id if manager else None
        self.users[ident] = User(ident, mail, enabled, "Guest" if guest else "Member", boss)
        return ident

    def add_group(self, mail: str, members: list[str]) -> str:
        """A group of users (by mail) and groups (by id)."""
        ident = f"{next(self._ids):08x}-1111-4000-8000-{next(self._ids):012x}"
        ids = [m if m in self.groups else self.user(m).id for m in members]
        self.groups[ident] = Group(ident, mail.lower(), ids)
        return ident

    def user(self, key: str) -> User:
        found = self.find(key)
        assert found is not None, key
        return found

    def find(self, key: str) -> User | None:
        key = unquote(key)
        if key in self.users:
            return self.users[key]
        return next((u for u in self.users.values() if (u.mail or "").lower() == key.lower()), None)

    def remove(self, mail: str) -> None:
        del self.users[self.user(mail).id]

    # -- routes ------------------------------------------------------------------

    def _begin(self, request: Request, kind: str) -> Reply | None:
        fault = self.graph._count(kind)
        if fault:
            return fault
        if not self.graph._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        return None

    def _select(self, request: Request, item: dict[str, Any]) -> dict[str, Any]:
        wanted = request.query.get("$select")
        if not wanted:
            return item
        fields = set(wanted.split(",")) | {"@odata.type"}
        return {k: v for k, v in item.items() if k in fields}

    def _paged(self, request: Request, path: str, items: list[dict[str, Any]]) -> Reply:
        """One page of ``items`` (or of the rest a ``$skiptoken`` names) with its nextLink."""
        if "$select" not in request.query:
            self.graph.violations.append(f"GET {path} without $select")
        try:
            top = int(request.query.get("$top", "100"))
        except ValueError:
            return error(400, "Request_BadRequest")
        if not 1 <= top <= MAX_TOP:
            return error(400, "Request_BadRequest")  # "Invalid page size specified"
        token = request.query.get("$skiptoken")
        if token is not None:
            rest = self._pages.pop(token, None)
            if rest is None:
                return error(400, "Directory_ExpiredPageToken")
        else:
            rest = [self._select(request, i) for i in items]
        page, rest = rest[:top], rest[top:]
        answer: dict[str, Any] = {"value": page}
        if rest:
            token = f"X{next(self._ids)}"
            self._pages[token] = rest
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = token
            answer["@odata.nextLink"] = f"{self.graph.base}{path}?{urlencode(query)}"
        return 200, {}, answer

    def _list_users(self, request: Request, match: re.Match[str]) -> Reply:
        failed = self._begin(request, "users")
        if failed:
            return failed
        with self.graph.lock:
            items = [u.shown() for u in self.users.values()]
            return self._paged(request, request.path, items)

    def _manager(self, request: Request, match: re.Match[str]) -> Reply:
        failed = self._begin(request, "manager")
        if failed:
            return failed
        with self.graph.lock:
            user = self.find(match.group(1))
            if user is None or user.manager is None or user.manager not in self.users:
                return error(404, "Request_ResourceNotFound")
            return 200, {}, self._select(request, self.users[user.manager].shown())

    def _direct_reports(self, request: Request, match: re.Match[str]) -> Reply:
        failed = self._begin(request, "directReports")
        if failed:
            return failed
        with self.graph.lock:
            boss = self.find(match.group(1))
            if boss is None:
                return error(404, "Request_ResourceNotFound")
            items = [u.shown() for u in self.users.values() if u.manager == boss.id]
            return self._paged(request, request.path, items)

    def _find_groups(self, request: Request, match: re.Match[str]) -> Reply:
        failed = self._begin(request, "groups")
        if failed:
            return failed
        wanted = re.fullmatch(r"mail eq '([^']+)'", request.query.get("$filter", ""))
        if wanted is None:
            return error(400, "Request_UnsupportedQuery")
        with self.graph.lock:
            found = [
                {"id": g.id} for g in self.groups.values() if g.mail == wanted.group(1).lower()
            ]
        return 200, {}, {"value": found}

    def _members(self, request: Request, match: re.Match[str]) -> Reply:
        failed = self._begin(request, "transitiveMembers")
        if failed:
            return failed
        with self.graph.lock:
            group = self.groups.get(unquote(match.group(1)))
            if group is None:
                return error(404, "Request_ResourceNotFound")
            items: dict[str, dict[str, Any]] = {}
            pending, seen = list(group.members), {group.id}
            while pending:
                ident = pending.pop(0)
                if ident in self.groups and ident not in seen:
                    seen.add(ident)
                    items[ident] = {"@odata.type": "#microsoft.graph.group", "id": ident}
                    pending += self.groups[ident].members
                elif ident in self.users:
                    items[ident] = self.users[ident].shown()
            return self._paged(request, request.path, list(items.values()))
