"""Jinja2 templates for agenda blocks and reminder messages (en, sv)."""
