"""The outside world behind small protocols: calendars, the directory, notification channels."""
