"""Passwords of the dashboard: a slow hash (scrypt), and a brake on guessing.

A hash reads ``scrypt$N$r$p$SALT$HASH`` (salt and hash in URL-safe base64);
``feedback-agendas admin-password`` makes one. Checking one costs about 50 ms
and 16 MiB, so an offline guess is as slow as an online one.

:class:`LoginThrottle` counts failed logins per client address and in all: after
a few failures in a row the next attempt is refused until a delay has passed,
doubling with each further failure (capped), so guessing online gets a few
tries a minute at most. A success resets the address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# scrypt cost: N=2**14, r=8, p=1 needs 16 MiB; OWASP's floor for scrypt.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A slow, salted hash of ``password`` to put in ``server.admin.password_hash``."""
    if not password:
        raise ValueError("an empty password")
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def check_hash_format(value: str) -> None:
    """Raise ValueError unless ``value`` is a hash :func:`hash_password` makes, of enough cost."""
    found = _FORMAT.match(value)
    if not found:
        raise ValueError(
            "not a password hash from `feedback-agendas admin-password` (scrypt$N$r$p$salt$hash)"
        )
    n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    if n < 2**14 or n & (n - 1) or r < 8 or p < 1 or n * r > 2**22:
        raise ValueError("the hash's scrypt cost is too low or too high; make a new one")
    try:
        if len(_unb64(found.group(4))) < 16 or len(_unb64(found.group(5))) != 32:
            raise ValueError("the hash's salt or digest has the wrong length; make a new one")
    except binascii.Error as exc:
        raise ValueError("the hash is not well formed; make a new one") from exc


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the hash ``stored`` (constant-time comparison)."""
    found = _FORMAT.match(stored)
    if not found:
        return False
    n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    salt, expected = _unb64(found.group(4)), _unb64(found.group(5))
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0


class LoginThrottle:
    """Failed logins per client address: after ``free`` failures, wait before the next try.

    The wait is ``base_seconds`` after the ``free``-th failure and doubles with
    every further one, up to ``max_seconds``. All addresses together also have
    a budget (``global_free``), so guessing from many addresses is slowed too.
    """

    def __init__(
        self,
        *,
        free: int = 3,
        base_seconds: float = 5.0,
        max_seconds: float = 300.0,
        global_free: int = 50,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.free = free
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.global_free = global_free
        self._clock = clock
        self._max_addresses = max_addresses
        self._by_address: dict[str, _Failures] = {}
        self._all = _Failures()
        self._lock = threading.Lock()

    def wait_seconds(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: it may try now)."""
        now = self._clock()
        with self._lock:
            mine = self._by_address.get(address, _Failures())
            return max(0.0, mine.blocked_until - now, self._all.blocked_until - now)

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            if address not in self._by_address and len(self._by_address) >= self._max_addresses:
                self._by_address.pop(next(iter(self._by_address)))
            mine = self._by_address.setdefault(address, _Failures())
            for failures, free in ((mine, self.free), (self._all, self.global_free)):
                failures.count += 1
                if failures.count >= free:
                    delay = self.base_seconds * 2 ** (failures.count - free)
                    failures.blocked_until = now + min(self.max_seconds, delay)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._by_address.pop(address, None)
