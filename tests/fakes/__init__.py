"""Local stand-ins for outside services that the real clients talk to unchanged."""
