"""Reminders: what is due, the outbox that sends it once, and feedback wins."""
