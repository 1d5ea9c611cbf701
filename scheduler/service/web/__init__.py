"""The daemon's web pages: the admin dashboard under ``/admin/`` and the pages people open.

- :mod:`.security`: signed purpose-bound tokens, CSRF, cookies, security headers;
- :mod:`.pages`: the Jinja2 environment, rendering, the stylesheet, forms.
"""
