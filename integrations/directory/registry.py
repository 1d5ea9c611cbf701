"""Every org directory (``org.directory.provider``), one line each: name -> its module.

Each module exports a :class:`~feedback_agendas.integrations.directory.base.DirectorySpec`
named ``DIRECTORY``: its config model and a factory of
:class:`~feedback_agendas.integrations.directory.base.DirectoryReader`.
"""

from __future__ import annotations

from feedback_agendas.integrations.directory.base import DirectorySpec
from feedback_agendas.integrations.plugins import Registry

DIRECTORIES = Registry(
    "org directory",
    "DIRECTORY",
    DirectorySpec,
    {
        "google": "feedback_agendas.integrations.directory.google",
        "microsoft": "feedback_agendas.integrations.directory.microsoft",
    },
)

directory_names = DIRECTORIES.names
directory_spec = DIRECTORIES.spec
directory_specs = DIRECTORIES.specs
