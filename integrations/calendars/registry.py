"""Every calendar provider, one line each: name -> the module that exports its ``PROVIDER``.

The config's ``calendars[]`` union, the list of provider names, the factory
lookup, the webhook routes, failure classification and provider CLI commands
are all derived from the :class:`~feedback_agendas.integrations.calendars.base.ProviderSpec`
each module exports. Adding a provider is one module and one line here.

A module is imported on first use. The order is the order names are listed
in messages (``should be one of: vdir, google, caldav, memory``).
"""

from __future__ import annotations

from feedback_agendas.integrations.calendars.base import ProviderSpec
from feedback_agendas.integrations.plugins import Registry

PROVIDERS = Registry(
    "calendar provider",
    "PROVIDER",
    ProviderSpec,
    {
        "vdir": "feedback_agendas.integrations.calendars.vdir",
        "google": "feedback_agendas.integrations.calendars.google",
        "caldav": "feedback_agendas.integrations.calendars.caldav",
        "memory": "feedback_agendas.integrations.calendars.memory",
        "microsoft": "feedback_agendas.integrations.calendars.microsoft_config",
    },
)

provider_names = PROVIDERS.names
provider_spec = PROVIDERS.spec
provider_specs = PROVIDERS.specs
register = PROVIDERS.register
unregister = PROVIDERS.unregister
