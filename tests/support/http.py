"""HTTP and config helpers for tests that run the daemon's endpoints on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request
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
