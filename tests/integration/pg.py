"""A private schema on the shared PostgreSQL test database, for any test suite.

``postgres_url()`` creates a uniquely named schema and returns a URL whose
connections use it (``search_path`` via libpq ``options``), plus a cleanup that
drops it. Suites that run at the same time on the same database never see
each other's tables.

The server is ``FA_TEST_POSTGRES_URL`` (default: the local one). When it cannot
be reached the test is skipped, unless ``FA_REQUIRE_POSTGRES=1`` (CI), where
that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def server_url() -> URL:
    """The test server's URL, always with the psycopg 3 driver."""
    url = make_url(os.environ.get("FA_TEST_POSTGRES_URL", DEFAULT_URL))
    return url.set(drivername="postgresql+psycopg")


def _admin(url: URL) -> Callable[[str], None]:
    def run(sql: str) -> None:
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
        try:
            with engine.begin() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    return run


def postgres_url() -> tuple[str, Callable[[], None]]:
    """Create a fresh schema; return its URL (password included) and a cleanup that drops it.

    Skips the calling test when the server is unreachable (fails under
    ``FA_REQUIRE_POSTGRES=1``). Dispose every engine on the URL before cleanup.
    """
    server = server_url()
    schema = f"fa_test_{uuid.uuid4().hex[:16]}"
    run = _admin(server)
    try:
        run(f'CREATE SCHEMA "{schema}"')
    except OperationalError as exc:
        where = server.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        message = f"PostgreSQL not reachable at {where}: {reason}"
        if os.environ.get("FA_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    url = server.update_query_dict({"options": f"-csearch_path={schema}"})

    def cleanup() -> None:
        run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return url.render_as_string(hide_password=False), cleanup


@contextmanager
def postgres_schema() -> Iterator[str]:
    """``postgres_url()`` as a context manager: yields the URL, drops the schema after."""
    url, cleanup = postgres_url()
    try:
        yield url
    finally:
        cleanup()


@contextmanager
def postgres_engine() -> Iterator[Engine]:
    """An engine on a fresh schema (``postgres_schema()``), disposed before the drop."""
    with postgres_schema() as url:
        engine = create_engine(url, pool_size=10, max_overflow=20)
        try:
            yield engine
        finally:
            engine.dispose()
