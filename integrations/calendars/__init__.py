"""Calendar providers. See :mod:`feedback_agendas.integrations.calendars.base` for the protocol."""
