"""Managers and their reports from the Google Admin SDK Directory.

``users.list`` with ``query="directManager='boss@x'"`` (scope
``admin.directory.user.readonly``) names the direct reports of one manager.
Search results may lag by up to 36 hours, so the directory only adds to the
teams in the config: where both name a team for a manager, the config wins.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import httplib2
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from pydantic import model_validator

from feedback_agendas.integrations.calendars.google_client import (
    credentials_problem,
    load_credentials,
)
from feedback_agendas.integrations.calendars.google_errors import (
    TRANSPORT_ERRORS,
    translate_http_error,
    translate_transport_error,
)
from feedback_agendas.integrations.config_types import (
    Credentials,
    Domain,
    Email,
    HttpUrl,
    ProblemAt,
    is_loopback_url,
)
from feedback_agendas.integrations.directory.base import (
    DirectoryConfig,
    DirectorySpec,
    ManagerReports,
)
from feedback_agendas.integrations.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry

DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
DEFAULT_ENDPOINT = "https://admin.googleapis.com/"


@lru_cache(maxsize=4)
def _users_resource(endpoint: str) -> Any:
    import json

    text = get_static_doc("admin", "directory_v1")
    assert text is not None
    service = build_from_document(
        json.loads(text), http=httplib2.Http(), client_options={"api_endpoint": endpoint}
    )
    return service.users()


class DirectoryCalls:
    """One admin's Directory API calls: counted, retried, errors translated; one connection pool.

    Shared by the manager lookups here and the people discovery in ``google_discovery``.
    """

    def __init__(
        self,
        http: Any,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        policy: RetryPolicy,
    ) -> None:
        self.http = http
        self._sleep, self._clock, self._policy = sleep, clock, policy
        self._rng = random.Random()
        self.requests = 0

    def list(self, resource: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """``resource.list(**params)``, once per attempt, under the retry policy."""

        def once() -> dict[str, Any]:
            self.requests += 1
            try:
                answer: dict[str, Any] = resource.list(**params).execute(
                    http=self.http, num_retries=0
                )
                return answer
            except HttpError as exc:
                raise translate_http_error(exc, operation=operation) from exc
            except TRANSPORT_ERRORS as exc:
                raise translate_transport_error(exc, operation=operation) from exc

        return call_with_retry(
            once, policy=self._policy, sleep=self._sleep, clock=self._clock, rng=self._rng
        )

    def close(self) -> None:
        connections = getattr(getattr(self.http, "http", None), "connections", None)
        if isinstance(connections, dict):
            for conn in list(connections.values()):
                conn.close()
            connections.clear()


class GoogleDirectory:
    """Reads direct reports from the Admin SDK Directory as one admin user."""

    def __init__(
        self,
        *,
        credentials: str,
        subject: str | None = None,
        domain: str | None = None,
        api_endpoint: object | None = None,
        http: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        # Config may hand us a URL object (pydantic HttpUrl): the client wants text.
        api_endpoint = str(api_endpoint) if api_endpoint else None
        endpoint = api_endpoint or DEFAULT_ENDPOINT
        creds = load_credentials(
            credentials, subject=subject, api_endpoint=endpoint, scopes=(DIRECTORY_SCOPE,)
        )
        self._calls = DirectoryCalls(
            AuthorizedHttp(creds, http=http or httplib2.Http(timeout=30)),
            sleep=sleep,
            clock=clock,
            policy=retry_policy,
        )
        self._users = _users_resource(endpoint)
        self._domain = domain

    @property
    def requests(self) -> int:
        return self._calls.requests

    def reports_of(self, manager: str) -> ManagerReports:
        """Every active direct report of ``manager`` (all pages)."""
        reports: set[str] = set()
        page: str | None = None
        while True:
            params: dict[str, Any] = {
                "query": f"directManager='{manager}'",
                "maxResults": 500,
                "pageToken": page,
            }
            if self._domain:
                params["domain"] = self._domain
            else:
                params["customer"] = "my_customer"
            answer = self._list(params)
            for user in answer.get("users") or ():
                email = str(user.get("primaryEmail", "")).lower()
                if email and not user.get("suspended") and not user.get("archived"):
                    reports.add(email)
            page = answer.get("nextPageToken")
            if not page:
                return ManagerReports(manager.lower(), frozenset(reports))

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._calls.list(self._users, "users.list", params)

    def close(self) -> None:
        self._calls.close()


# -- registration -------------------------------------------------------------


class GoogleDirectoryConfig(DirectoryConfig):
    """Where to learn who manages whom: the Admin SDK Directory."""

    provider: Literal["google"]
    credentials: Credentials
    subject: Email | None = None
    domain: Domain | None = None
    api_endpoint: HttpUrl | None = None

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> GoogleDirectoryConfig:
        if self.credentials == "anonymous" and not is_loopback_url(self.api_endpoint):
            raise ProblemAt(
                "credentials", "'anonymous' is allowed only with an api_endpoint on this machine"
            )
        return self

    def problems_here(self) -> list[tuple[str, str]]:
        """The credentials file, loaded as the reader loads it (no token is fetched)."""
        problem = credentials_problem(
            self.credentials,
            subject=self.subject,
            api_endpoint=self.api_endpoint,
            scopes=(DIRECTORY_SCOPE,),
        )
        return [("credentials", problem)] if problem else []


def build_google_directory(config: GoogleDirectoryConfig) -> GoogleDirectory:
    """The Admin SDK Directory reader for ``org.directory``."""
    return GoogleDirectory(
        credentials=str(config.credentials),
        subject=config.subject,
        domain=config.domain,
        api_endpoint=config.api_endpoint,
    )


DIRECTORY = DirectorySpec(name="google", config=GoogleDirectoryConfig, build=build_google_directory)
