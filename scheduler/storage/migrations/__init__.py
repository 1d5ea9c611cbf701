"""The database migrations (Alembic), shipped inside the package, and how to apply them.

Alembic is configured in code (no ``alembic.ini``): ``script_location`` is this
package's folder, so a plain ``pip install .`` carries everything needed.

To add a migration, declare the table (or column) in
:mod:`feedback_agendas.scheduler.storage.tables`, then let Alembic draft the file
from a database at head::

    python -c "import feedback_agendas.scheduler.storage.migrations as m; m.draft_revision('foo')"

then review ``versions/NNNN_*.py``. ``tests/integration/test_store.py`` checks
that the migrated schema equals the tables the code declares.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, text

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.scheduler.storage.db import (
    create_engine_for,
    is_postgresql,
    write_transaction,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent

# Any fixed 64-bit number; every replica takes the same lock before migrating.
_PG_MIGRATION_LOCK = 0x6661_6D69_6772_6174  # "famigrat"


def schema_metadata() -> MetaData:
    """Every table the code uses, for autogenerate and for checking migrations against code.

    Imported lazily: applying migrations needs none of it.
    """
    from feedback_agendas.scheduler.storage.tables import metadata

    return metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations; ``connection`` is the one to migrate on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script_head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def head_revision() -> str:
    """The newest revision this version of feedback-agendas knows."""
    head = _script_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def draft_revision(message: str) -> Path:
    """Write a new migration drafted by autogenerate (for developers); return its path.

    Compares the code's tables with a scratch SQLite database at head.
    """
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine_for(f"sqlite:///{scratch}/draft.db")
        try:
            migrate(engine)
            head = _script_head()
            rev_id = f"{int(head) + 1:04d}" if head and head.isdigit() else None
            with engine.begin() as connection:
                config = alembic_config(connection)
                config.attributes["autogenerate"] = True
                script = command.revision(config, message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def migrate(engine: Engine) -> str:
    """Upgrade the database to head in one transaction and return the head revision.

    Safe to run from several processes at once: on PostgreSQL they queue on an
    advisory lock, on SQLite on the write lock (``BEGIN IMMEDIATE``); the
    later ones find the database at head and do nothing. Raises
    :class:`~feedback_agendas.agendas.errors.UserError` when the database is at a revision this
    version does not know (it was upgraded by a newer version).
    """
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    with write_transaction(engine) as connection:
        if is_postgresql(connection):
            # Held until this transaction ends, i.e. after the migration committed.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        current = current_revision(connection)
        if current is not None and current not in known:
            raise UserError(
                f"the database is at revision {current}, which this version of "
                f"feedback-agendas does not know (newest known: {script.get_current_head()}); "
                "upgrade feedback-agendas"
            )
        command.upgrade(alembic_config(connection), "head")
        revision = current_revision(connection)
    assert revision is not None
    return revision
