"""keccak-256, from the fastest backend available (one place that picks it)."""

from __future__ import annotations

import re
from functools import lru_cache

try:  # libkeccak through safe-pysha3: ~25x faster than pycryptodome per small hash
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        """keccak-256 of `data` (Ethereum's hash, not NIST SHA3-256)."""
        digest: bytes = _keccak_256(data).digest()  # bytes already: no copy (~20 hashes a mirrored record)
        return digest

except ImportError:  # pragma: no cover - a slower but correct fallback
    from eth_hash.auto import keccak as _eth_keccak

    def keccak(data: bytes) -> bytes:
        """keccak-256 of `data` (Ethereum's hash, not NIST SHA3-256)."""
        return _eth_keccak(data)


def hex32(data: bytes) -> str:
    """`0x`-prefixed lowercase hex of 32 bytes."""
    return "0x" + data.hex()


def parse_hex(value: object, length: int, field: str) -> bytes:
    """Bytes from a `0x`-prefixed hex string of exactly `length` bytes, or ValueError naming `field`."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"{field}: expected 0x-prefixed hex of {length} bytes")
    if len(value) != 2 + 2 * length:
        raise ValueError(f"{field}: expected {length} bytes, got {(len(value) - 2) / 2:g}")
    try:
        parsed = bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{field}: not hexadecimal") from None
    # bytes.fromhex skips whitespace between bytes: "0xaa" + 60 blanks + "bb" is 64
    # characters but 2 bytes. Refused, or a peer could serve a record's field hashes
    # re-cut into other lengths that still concatenate to the signed payload hash.
    if len(parsed) != length:
        raise ValueError(f"{field}: not hexadecimal")
    return parsed


_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


@lru_cache(maxsize=65_536)
def checksum_address(address: str) -> str:
    """EIP-55 checksummed form of a 0x-prefixed 20-byte hex address (ValueError if not one).

    Cached: the same few thousand participants sign most attestations, and eth_utils'
    version costs more than a signature recovery.
    """
    body = address[2:] if address[:2] in ("0x", "0X") else ""
    if _HEX40.fullmatch(body) is None:  # not int(body, 16): that takes a sign, blanks and "_"
        raise ValueError(f"not a 20-byte address: {address!r}")
    lower = body.lower()
    digest = keccak(lower.encode()).hex()
    return "0x" + "".join(c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(lower))
