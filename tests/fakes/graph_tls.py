"""TLS for local fakes that clients insist on reaching over https (msal's authority).

One throwaway certificate authority per test process (``trustme``), a server
certificate for 127.0.0.1 and localhost, and the CA's PEM file for clients to
trust (``verify=`` / ``ca_bundle``).
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import trustme


@dataclass(frozen=True)
class LocalTLS:
    ca_file: Path
    _ca: trustme.CA
    _cert: trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context


@lru_cache(maxsize=1)
def local_tls() -> LocalTLS:
    """The process's CA and server certificate (made once: key generation is slow)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    folder = Path(tempfile.mkdtemp(prefix="fa-graph-tls-"))
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return LocalTLS(ca_file, ca, cert)
