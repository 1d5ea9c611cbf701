"""Microsoft Graph in tests: a started fake with an app registered, and providers on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from feedback_agendas.integrations.calendars.microsoft import MicrosoftProvider
from feedback_agendas.integrations.calendars.microsoft_session import GraphSession
from tests.fakes.graph_api import FakeGraph

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "fake-client-secret-value"


def app_keys(graph: FakeGraph) -> dict[str, Any]:
    """The app's keys in a config entry (``calendars[]`` or ``discover:``) on ``graph``."""
    return {
        "tenant_id": graph.tenant,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "authority": graph.authority,
        "graph_endpoint": graph.graph_endpoint,
        "ca_bundle": graph.ca_file,
    }


def calendar_entry(
    graph: FakeGraph, mailbox: str, *, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One ``provider: microsoft`` entry of ``calendars[]`` for ``mailbox`` on ``graph``.

    ``extra`` sets other keys (``write_mode``, ``client_secret: ${MS_CLIENT_SECRET}``).
    """
    entry = {"name": name or mailbox, "provider": "microsoft", "owner": mailbox}
    return {**entry, **app_keys(graph), **extra}


def start_graph() -> FakeGraph:
    graph = FakeGraph().start()
    graph.add_app(CLIENT_ID, secret=SECRET)
    return graph


def graph_session(graph: FakeGraph, **kw: Any) -> GraphSession:
    kw.setdefault("sleep", lambda _s: None)
    return GraphSession(
        tenant_id=graph.tenant,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        authority=graph.authority,
        graph_endpoint=graph.graph_endpoint,
        ca_bundle=graph.ca_file,  # type: ignore[arg-type]
        **kw,
    )


def graph_provider(
    graph: FakeGraph,
    mailbox: str,
    *,
    name: str | None = None,
    session: GraphSession | None = None,
    now: Callable[[], datetime] | None = None,
    **kw: Any,
) -> MicrosoftProvider:
    kw.setdefault("own_session", session is None)
    return MicrosoftProvider(
        name=name or mailbox,
        owner=mailbox,
        session=session or graph_session(graph),
        now=now,
        **kw,
    )
