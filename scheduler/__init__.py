"""Runtime and side effects: config, store, sync engine, reminders, daemon, HTTP, CLI."""
