"""The bundled sample calendar week used by the demo and config.example.yaml."""
