"""Service-account key files for tests: a fresh RSA key and a token endpoint of our choosing."""

from __future__ import annotations

import json
from pathlib import Path


def service_account_file(folder: Path, token_uri: str, name: str = "key.json") -> Path:
    """A service-account key (a fresh RSA key) whose tokens come from ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = folder / name
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "sync@project.iam.gserviceaccount.com",
                "private_key": pem,
                "private_key_id": "k1",
                "token_uri": token_uri,
            }
        ),
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path
