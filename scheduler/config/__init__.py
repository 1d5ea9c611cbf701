"""The config: its schema, the YAML source and what check-config checks."""
