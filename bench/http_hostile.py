"""Bench: what hostile clients cost the daemon's HTTP endpoints.

Starts the endpoint server in this process on a free loopback port (a webhook
that refuses everything, as a wrong token would) and measures:

1. **unbounded body**: a client sends ``Content-Length: -1`` and then streams
   ``--mb`` megabytes as fast as the server takes them. Printed: how much the
   server took before it stopped reading, and how much this process's peak
   resident memory grew;
2. **idle connections**: ``--idle`` clients connect and send nothing.
   Printed: the server's threads while they wait, and after the request
   deadline (10 s by default) plus two seconds;
3. **health under load**: whether ``/healthz`` answers while they wait.

    .venv/bin/python -m bench.http_hostile [--mb 100] [--idle 200]

It only uses the server's original constructor arguments, so the same script
measures an older checkout too (``PYTHONPATH=<old tree>``).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

from feedback_agendas.scheduler.service.http_server import EndpointServer


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def unbounded_body(port: int, megabytes: int) -> tuple[int, float]:
    """(bytes the server took, MB by which the peak resident memory grew)."""
    before = peak_rss_mb()
    sent = 0
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /webhooks/google HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        try:
            while sent < megabytes * 1024 * 1024:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
    time.sleep(1.0)  # let the server finish with what it took
    return sent, peak_rss_mb() - before


def healthz(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            reply = conn.recv(100)
        return reply.split(b"\r\n", 1)[0].decode() or "closed"
    except OSError as exc:
        return type(exc).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--wait", type=float, default=12.0, help="seconds to hold them")
    args = parser.parse_args()

    server = EndpointServer(
        "127.0.0.1", 0, ready=lambda: (True, "ready"), metrics=lambda: (b"", "text/plain")
    )
    server.register_webhook("/webhooks/google", lambda _headers, _body: 403)
    server.start()
    baseline_threads = threading.active_count()
    try:
        taken, grown = unbounded_body(server.port, args.mb)
        print(
            f"unbounded body: client offered {args.mb} MB; server took {taken / 1024 / 1024:.1f} MB"
            f" before it stopped reading; peak resident memory grew {grown:.1f} MB"
        )
        idle = []
        for _ in range(args.idle):
            try:
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            except OSError:
                break
        time.sleep(1.0)
        held = threading.active_count() - baseline_threads
        print(
            f"idle connections: {len(idle)} open; server threads held after 1 s: {held}; "
            f"/healthz: {healthz(server.port)}"
        )
        time.sleep(max(0.0, args.wait - 1.0))
        held = threading.active_count() - baseline_threads
        closed = 0
        for conn in idle:
            conn.settimeout(0.2)
            try:
                closed += conn.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
            conn.close()
        print(
            f"idle connections after {args.wait:g} s: server threads held {held}; "
            f"closed by the server {closed}/{len(idle)}; /healthz: {healthz(server.port)}"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
