"""Alembic's entry point: run the migrations on the connection we were given.

:func:`feedback_agendas.scheduler.storage.migrations.migrate` passes an open connection (inside its
transaction, holding the migration lock). For the ``alembic`` command line
, pass the database with ``-x url=...``. ``draft_revision`` sets the
``autogenerate`` attribute to compare with the code's tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from feedback_agendas.scheduler.storage.db import create_engine_for
from feedback_agendas.scheduler.storage.migrations import schema_metadata


def run_on(connection: Connection, *, for_autogenerate: bool = False) -> None:
    context.configure(
        connection=connection,
        # Only autogenerate compares with the code's tables; applying needs none.
        target_metadata=schema_metadata() if for_autogenerate else None,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite can roll DDL back too, as long as we own the transaction.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("offline (SQL script) mode is not supported")
    given = context.config.attributes.get("connection")
    if given is not None:
        run_on(given, for_autogenerate=bool(context.config.attributes.get("autogenerate")))
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database: alembic -x url=sqlite:///FILE ...")
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            run_on(connection, for_autogenerate=True)
    finally:
        engine.dispose()


main()
