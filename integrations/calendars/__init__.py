"""Calendar providers. See :mod:`integrations.calendars.base` for the protocol."""
