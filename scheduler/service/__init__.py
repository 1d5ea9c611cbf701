"""The service: the daemon, its process loop, HTTP endpoints, metrics and CLI."""
