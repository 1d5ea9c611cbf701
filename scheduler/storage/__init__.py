"""Storage: one database layer for SQLite and PostgreSQL, and its migrations."""
