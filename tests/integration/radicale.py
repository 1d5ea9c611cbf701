"""A real Radicale server for tests and the bench, started on a free loopback port.

Use :func:`running_radicale` as a context manager, or the pytest fixture
``radicale_server`` below (import it into a test module or a conftest)::

    from tests.integration.radicale import radicale_server  # noqa: F401

    def test_x(radicale_server): ...

Radicale runs as its own process (``python -m radicale --config ""``) with
``--auth-type none`` (its default, ``denyall``, refuses everyone) and a
temporary storage folder. It is stopped by its pid, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

READY_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


class RadicaleStartError(RuntimeError):
    """Radicale did not answer within the timeout; carries its output."""


@dataclass(frozen=True)
class RadicaleServer:
    """A running Radicale: its base URL, storage folder and process id."""

    url: str
    storage: Path
    pid: int

    def user_url(self, user: str) -> str:
        """The home collection URL of ``user`` (with ``--auth-type none`` any name works)."""
        return f"{self.url}/{user}/"

    def new_calendar_url(self, user: str = "tester") -> str:
        """A fresh, not yet created calendar URL under ``user``'s home."""
        return f"{self.user_url(user)}{uuid.uuid4().hex}/"


def free_loopback_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RadicaleStartError(
                f"radicale exited with {process.returncode}: {log_path.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(f"{url}/.web/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            # Polling a starting server: the only place a pause is the point.
            time.sleep(0.05)
    raise RadicaleStartError(f"radicale not ready after {READY_TIMEOUT_SECONDS}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def running_radicale(storage: Path | None = None) -> Iterator[RadicaleServer]:
    """Start Radicale on a free 127.0.0.1 port, yield it, and stop it by pid."""
    with tempfile.TemporaryDirectory(prefix="radicale-") as tmp:
        folder = storage or Path(tmp) / "collections"
        folder.mkdir(parents=True, exist_ok=True)
        log_path = Path(tmp) / "radicale.log"
        port = free_loopback_port()
        command = [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--auth-type",
            "none",
            "--storage-filesystem-folder",
            str(folder),
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_until_ready(url, process, log_path)
                yield RadicaleServer(url=url, storage=folder, pid=process.pid)
            finally:
                _stop(process)


@pytest.fixture(scope="session")
def radicale_server() -> Iterator[RadicaleServer]:
    """One Radicale for the whole test session; tests use fresh calendars in it."""
    with running_radicale() as server:
        yield server
