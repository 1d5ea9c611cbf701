"""Reloading the config in the running daemon: SIGHUP, or the file changed.

:class:`ConfigReloader` owns the config file's path, the last good config, a
``generation`` (1 at start, one more per applied reload) and the last
reload's error. The service's main loop calls :meth:`ConfigReloader.poll`
about twice a second: it reloads at once after :meth:`~ConfigReloader.request`
(the SIGHUP handler only sets a flag; the reload runs in the loop's thread),
and otherwise looks at the file every :data:`CHECK_SECONDS`: its mtime, size
and inode, then the SHA-256 of its bytes, so that a ``touch`` changes nothing.

A reload loads the file as every command does (``${VAR}`` from the
environment, every problem as ``FILE:LINE: key.path: message``) and runs the
checks of ``check-config`` that need no network
(:func:`~feedback_agendas.scheduler.config.checks.check_located`). A config
with problems is rejected: the problems are logged, the old config keeps
running, and ``/metrics`` shows the first problem's place (file, line and key,
never a message, which may quote a value). A good one goes to
:meth:`~feedback_agendas.scheduler.service.daemon.Daemon.use_config` and
counts from each calendar's next cycle on.

Some settings cannot change in a running process (:data:`RESTART_ONLY`: the
database, where the server listens, what signs links and sessions, who may
open the dashboard). A reload that changes one keeps the running value, says
so in the log and in ``feedback_agendas_config_needs_restart{setting=...}``,
and applies everything else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.scheduler.config.checks import check_located
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import UNFORESEEN, load_config_located
from feedback_agendas.scheduler.service.metrics import DaemonMetrics

if TYPE_CHECKING:
    from feedback_agendas.scheduler.service.daemon import Daemon

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0
APPLIED = "applied"
REJECTED = "rejected"
UNCHANGED = "unchanged"

# (section, key): what only a restart changes. The server's address and
# port, its public URL (push channel addresses, links in messages), the
# secret that signs links and sessions, and the dashboard's routes and logins
# are set up once when the process starts.
RESTART_ONLY: tuple[tuple[str, str], ...] = (
    ("storage", "url"),
    ("server", "host"),
    ("server", "port"),
    ("server", "public_url"),
    ("server", "secret"),
    ("server", "dashboard"),
    ("server", "admin"),
    ("server", "trusted_proxy_header"),
    ("server", "trusted_proxy_addresses"),
)


def keep_running_settings(running: AppConfig, new: AppConfig) -> tuple[AppConfig, tuple[str, ...]]:
    """``new`` with the running values of :data:`RESTART_ONLY`, and the keys that differed."""
    changed = tuple(
        f"{section}.{key}"
        for section, key in RESTART_ONLY
        if getattr(getattr(running, section), key) != getattr(getattr(new, section), key)
    )
    if not changed:
        return new, ()
    kept = {key: getattr(running.server, key) for part, key in RESTART_ONLY if part == "server"}
    server = new.server.model_copy(update=kept)
    return new.model_copy(update={"storage": running.storage, "server": server}), changed


# ``FILE:LINE: key.path: message``: the key path is letters, digits, ``_``, ``-``, ``.`` and [n].
_KEY = re.compile(r"[A-Za-z_][\w\-]*(?:\.[\w\-]+|\[\d+\])*")


def problem_place(problem: str, path: Path) -> str:
    """Where a problem is, as ``config.yaml:12: org.teams[0].goals``: no message, no value.

    For a label in ``/metrics``. The file is named by its last part only.
    """
    source = str(path)
    rest = problem.removeprefix(source)
    if rest == problem:
        return path.name
    line = re.match(r":(\d+)", rest)
    if line is None:
        return path.name
    where = f"{path.name}:{line[1]}"
    after = rest[line.end() :]
    key = re.match(r": (" + _KEY.pattern + r"): ", after)
    return f"{where}: {key[1]}" if key else where


class ConfigReloader:
    """The running daemon's config: the file it comes from, its generation, the last error.

    ``apply(cfg)`` makes a checked config the running one and returns the keys
    that need a restart (the service passes :meth:`Daemon.use_config`).
    """

    def __init__(
        self,
        path: Path,
        config: AppConfig,
        apply: Callable[[AppConfig], Sequence[str]],
        metrics: DaemonMetrics,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        check_every: float = CHECK_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.apply = apply
        self.metrics = metrics
        self.environ = environ
        self.clock = clock
        self.check_every = check_every
        self.generation = 1
        self.last_error: str | None = None
        self.needs_restart: tuple[str, ...] = ()
        self._requested = False
        self._next_check = clock() + check_every
        # The file as the running config was read (close enough: read now).
        self._stamp = self._stat()
        self._digest = self._read_digest()
        metrics.config_generation.set(self.generation)
        metrics.config_last_reload_error.labels("").set(0)
        for result in (APPLIED, REJECTED, UNCHANGED):
            metrics.config_reloads.labels(result)

    @classmethod
    def for_daemon(cls, path: Path, daemon: Daemon, **kwargs: Any) -> ConfigReloader:
        """A reloader of ``daemon``'s config file (``run --config PATH``)."""
        return cls(path, daemon.cfg, daemon.use_config, daemon.metrics, **kwargs)

    def request(self) -> None:
        """Reload at the next :meth:`poll` (SIGHUP). Safe in a signal handler: it sets a flag."""
        self._requested = True

    def poll(self) -> str | None:
        """The main loop's tick: reload if asked to, or check the file when it is time.

        Returns the result (``applied``, ``rejected``, ``unchanged``) or None
        when nothing was looked at. Never raises.
        """
        if self._requested:
            self._requested = False
            return self.reload(forced=True)
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every
        return self.check()

    def check(self) -> str | None:
        """Reload when the file changed (None: its stat is as before, nothing was read)."""
        if self._stat() == self._stamp:
            return None
        return self.reload(forced=False)

    def reload(self, *, forced: bool) -> str:
        """Load, check and apply the file; ``forced`` (SIGHUP) applies even the same bytes.

        A forced reload also reads what the config names again (templates,
        credentials files). Never raises: a failure keeps the old config.
        """
        self._stamp = self._stat()
        digest = self._read_digest()
        if not forced and digest == self._digest:
            self.metrics.config_reloads.labels(UNCHANGED).inc()
            return UNCHANGED
        self._digest = digest
        try:
            located = load_config_located(self.path, self.environ)
            problems = check_located(located)
        except ConfigError as exc:
            problems = exc.problems
        except Exception as exc:  # as in check-config: a bug here is a message, not a crash
            problems = [f"{self.path}: {UNFORESEEN} ({type(exc).__name__})"]
        if problems:
            return self._reject(problems)
        try:
            needs_restart = tuple(self.apply(located.config))
        except ConfigError as exc:  # the templates, as the daemon builds them
            return self._reject(exc.problems)
        except Exception as exc:  # a database error reading the sources' lists, or a bug
            log.error(
                "config reload failed (%s); still running generation %d (SIGHUP tries again)",
                type(exc).__name__,
                self.generation,
                exc_info=not isinstance(exc, OSError),
            )
            return self._reject([f"{self.path}: the new config could not be applied"], logged=True)
        self.config = located.config
        self.generation += 1
        self.last_error = None
        self.needs_restart = needs_restart
        self.metrics.config_generation.set(self.generation)
        self.metrics.config_reloads.labels(APPLIED).inc()
        self.metrics.config_last_reload_error.clear()
        self.metrics.config_last_reload_error.labels("").set(0)
        self.metrics.config_needs_restart.clear()
        for key in needs_restart:
            self.metrics.config_needs_restart.labels(key).set(1)
            log.warning("config reload: %s changed; it takes effect after a restart", key)
        log.info("config reloaded from %s: generation %d", self.path, self.generation)
        return APPLIED

    def _reject(self, problems: Sequence[str], *, logged: bool = False) -> str:
        self.last_error = problem_place(problems[0], self.path)
        self.metrics.config_reloads.labels(REJECTED).inc()
        self.metrics.config_last_reload_error.clear()
        self.metrics.config_last_reload_error.labels(self.last_error).set(1)
        if not logged:
            log.warning(
                "config reload rejected (%d problem(s)); still running generation %d",
                len(problems),
                self.generation,
            )
            for problem in problems:  # as check-config prints them: places and kinds, no secrets
                log.warning("%s", problem)
        return REJECTED

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size, found.st_ino

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
