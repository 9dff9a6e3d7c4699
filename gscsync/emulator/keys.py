"""Throwaway service-account keys whose ``token_uri`` points at the emulator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gscsync.files import write_atomic


@dataclass(frozen=True)
class ServiceAccountKey:
    """A key file's content and the public half the emulator checks signatures with."""

    client_email: str
    private_pem: str
    public_pem: str

    def info(self, token_uri: str) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": "gscsync-demo",
            "private_key_id": "demo",
            "private_key": self.private_pem,
            "client_email": self.client_email,
            "client_id": "0",
            "token_uri": token_uri,
        }

    def write(self, path: Path, token_uri: str) -> Path:
        """Write the key file (mode 0600)."""
        write_atomic(path, json.dumps(self.info(token_uri), indent=2))
        return path


def new_service_account_key(
    client_email: str = "gscsync-demo@gscsync-demo.iam.gserviceaccount.com",
) -> ServiceAccountKey:
    """A fresh 2048-bit RSA key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return ServiceAccountKey(client_email, private, public)
