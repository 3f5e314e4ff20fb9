"""Encryption at rest of confidential payload fields (AES-256-GCM).

Each sealed value is bound to its attestation's UID as associated data, so a ciphertext
moved to another row fails to open instead of silently lying. The key lives in a file
(mode 0600) named by configuration; it is created on first use of the embedded setup.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value could not be opened (wrong key, tampered data, or moved row)."""


class Sealer:
    """Seals and opens JSON values with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the data key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path, *, create: bool = False) -> Sealer:
        """Load the key from `path` (32 raw bytes); with `create`, make one if absent."""
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"data key file {path} not found (set PROVENANCE_DATA_KEY_FILE)")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def seal(self, value: Any, bound_to: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        plaintext = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        return nonce + self._aead.encrypt(nonce, plaintext, bound_to)

    def open(self, sealed: bytes, bound_to: bytes) -> Any:
        try:
            plaintext = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], bound_to)
        except (InvalidTag, ValueError) as exc:
            raise SealError("sealed fields do not open: wrong key, tampered data, or moved row") from exc
        return json.loads(plaintext)
