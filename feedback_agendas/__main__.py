"""``python -m feedback_agendas``: the same as the ``feedback-agendas`` command."""

from feedback_agendas.scheduler.service.cli import main

main()
