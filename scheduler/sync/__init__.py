"""Sync: one cycle of one calendar, its failures, push channels and preview."""
