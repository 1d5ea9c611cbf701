"""HTTP and config helpers for tests that run the daemon's endpoints on loopback."""

from __future__ import annotations

import hmac
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml


def get(url: str) -> tuple[int, str]:
    """GET ``url``: its status and body, for error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def write_vdir_config(tmp: Path, **extra: Any) -> Path:
    """A config.yaml in ``tmp``: SQLite there, one vdir calendar ``mona`` in ``tmp/cal``.

    ``extra`` adds top-level sections (``server``, ``sync``, ...).
    """
    path = tmp / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
                "calendars": [
                    {
                        "name": "mona",
                        "provider": "vdir",
                        "path": str(tmp / "cal"),
                        "owner": "mona@example.com",
                    }
                ],
                "org": {"internal_domains": ["example.com"]},
                **extra,
            }
        ),
        encoding="utf-8",
    )
    (tmp / "cal").mkdir(exist_ok=True)
    return path


def token_webhook(
    tokens: Mapping[str, str], trigger: Callable[[str], None], header: str = "X-Goog-Channel-Token"
) -> Callable[[Mapping[str, str], bytes], int]:
    """A webhook callback: a POST whose ``header`` holds a calendar's token triggers it (200).

    ``tokens`` maps calendar names to tokens; any other request gets 403. For
    tests of the endpoint server's routing; the service's own route is the
    push channels' (``scheduler/sync/push.py``).
    """
    wanted = header.lower()

    def on_post(headers: Mapping[str, str], _body: bytes) -> int:
        given = next((v for k, v in headers.items() if k.lower() == wanted), None)
        for calendar, token in tokens.items():
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                trigger(calendar)
                return 200
        return 403

    return on_post
