"""feedback-agendas: praise in public, correction in private, written into the calendar.

The repository keeps the layers in top-level folders (``agendas/``, the pure core;
``integrations/``, calendars and notifiers; ``scheduler/``, the runtime;
``templates/``; ``examples/``, the sample calendar and config). They are installed
under this one package, so nothing generic lands in site-packages; in a checkout,
the links in this folder make the same names importable.
"""
