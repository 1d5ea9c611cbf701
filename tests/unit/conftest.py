"""Fixtures shared by the unit tests (defined in :mod:`tests.support`)."""

from tests.support.example import example  # noqa: F401
