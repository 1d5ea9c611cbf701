"""The daemon's endpoints over real HTTP on loopback, and the process lifecycle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import EndpointServer
from tests.support.http import get, token_webhook, write_vdir_config

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)


def config(tmp: Path, port: int = 0) -> Path:
    return write_vdir_config(
        tmp, server={"host": "127.0.0.1", "port": port}, sync={"interval_seconds": 1}
    )


def test_health_ready_metrics_and_push_webhook(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path))
    clock = [NOW]
    daemon = Daemon(
        cfg,
        clock=lambda: clock[0],
        provider_factory=lambda _c: MemoryProvider("mona", "mona@example.com"),
    )
    server = EndpointServer("127.0.0.1", 0, ready=daemon.readiness, metrics=daemon.metrics_text)
    triggered: list[str] = []
    server.register_webhook(
        "/webhooks/google", token_webhook({"mona": "tok-123"}, triggered.append)
    )
    server.start()
    try:
        assert server.port > 0
        assert get(server.url + "/healthz") == (200, "ok\n")
        assert get(server.url + "/readyz")[0] == 503  # no cycle yet
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(server.url + "/readyz", timeout=5)
        assert answer.value.headers["Content-Type"] == "application/json"
        assert json.loads(answer.value.read())["ready"] is False
        daemon.sync_calendar("mona")
        daemon.housekeeping()
        assert get(server.url + "/readyz")[0] == 200
        clock[0] = NOW + timedelta(hours=1)  # the last cycle is now too old
        assert get(server.url + "/readyz")[0] == 503
        status, text = get(server.url + "/metrics")
        assert status == 200
        assert 'feedback_agendas_cycles_total{result="ok"} 1.0' in text
        assert "feedback_agendas_leases_held" in text
        assert "feedback_agendas_reminders_dead_lettered_total" in text or "dead_lettered" in text

        def push(token: str) -> int:
            request = urllib.request.Request(
                server.url + "/webhooks/google",
                data=b"",
                method="POST",
                headers={
                    "X-Goog-Channel-Token": token,
                    "X-Goog-Resource-State": "exists",
                    "X-Goog-Channel-Id": "chan-1",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert push("wrong") == 403
        assert triggered == []
        assert push("tok-123") == 200
        assert triggered == ["mona"]
    finally:
        server.stop()
        daemon.shutdown()
        daemon.store.close()


def test_run_prints_its_endpoints_and_exits_0_on_sigterm_within_10_s(tmp_path: Path) -> None:
    path = config(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "feedback_agendas", "run", "--config", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("endpoints on http://127.0.0.1:"), line
        url = line.split()[2]
        assert get(url + "/healthz")[0] == 200
        deadline = time.monotonic() + 15
        while get(url + "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for a real process to finish its first cycle
        assert get(url + "/readyz")[0] == 200
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
