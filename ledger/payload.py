"""Payload commitments with selective disclosure.

Each off-chain field is committed on its own, with its own random 32-byte salt:

    fieldHash   = keccak256(salt || keccak256(utf8(name)) || keccak256(JCS(value)))
    payloadHash = keccak256(concatenation of all fieldHashes, sorted bytewise)

JCS is RFC 8785 JSON canonicalisation, so any implementation hashes the same value to
the same bytes. The signed attestation commits to `payloadHash`; a holder can then
disclose any subset of fields (value + salt) together with the list of all field
hashes, and anyone recomputes the disclosed hashes and the payload hash with a keccak
function and a JCS library. Undisclosed fields reveal nothing but their count: the
salt makes a field hash unguessable even for a small value space (a price, a country).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import rfc8785

from .hashing import hex32, keccak, parse_hex

MAX_FIELDS = 64
MAX_FIELD_NAME = 64


# RFC 8785 writes a string with none of these characters as its UTF-8 bytes in quotes,
# and an integer in this range as its decimal digits (rfc8785 refuses any other integer).
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value; ValueError if it is not JSON-safe.

    An ASCII string that needs no escape and an integer within 2^53 - 1 (most field
    values: lots, units, addresses, quantities) are written directly, as rfc8785 writes
    them (a test compares the two); anything else goes through rfc8785."""
    kind = type(value)
    if kind is str and value.isascii() and _NEEDS_ESCAPE.search(value) is None:
        return b'"' + str.encode(value) + b'"'
    if kind is int and -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
        return str(value).encode()
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, RecursionError) as exc:
        raise ValueError(f"not canonicalisable JSON: {exc}") from exc


def field_hash(name: str, value: Any, salt: bytes, canonical: bytes | None = None) -> bytes:
    """The commitment to one field (`canonical`: `canonical_json(value)`, when known)."""
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    return keccak(salt + _name_hash(name) + keccak(canonical_json(value) if canonical is None else canonical))


@lru_cache(maxsize=4096)
def _name_hash(name: str) -> bytes:
    return keccak(name.encode())  # the same few field names recur in every payload


def payload_hash(field_hashes: list[bytes] | tuple[bytes, ...]) -> bytes:
    """The commitment to a whole payload, from all its field hashes (order-free)."""
    return keccak(b"".join(sorted(field_hashes)))


@dataclass(frozen=True)
class DisclosedField:
    value: Any
    salt: bytes
    # canonical_json(value), when the parser already computed it (not part of equality).
    canonical: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Disclosure:
    """All field hashes of a payload and the fields disclosed (value and salt)."""

    field_hashes: tuple[bytes, ...]
    fields: dict[str, DisclosedField] = field(default_factory=dict)

    @property
    def payload_hash(self) -> bytes:
        return payload_hash(self.field_hashes)

    def problems(self, committed: bytes) -> list[str]:
        """Why this disclosure does not match `committed` (empty when it does)."""
        found: list[str] = []
        if self.payload_hash != committed:
            found.append("field hashes do not recompute the signed payloadHash")
        known = set(self.field_hashes)
        for name, disclosed in sorted(self.fields.items()):
            if field_hash(name, disclosed.value, disclosed.salt, disclosed.canonical) not in known:
                found.append(f"field {name!r} does not match its committed hash")
        return found

    def value(self, name: str, default: Any = None) -> Any:
        disclosed = self.fields.get(name)
        return default if disclosed is None else disclosed.value

    def restricted_to(self, names: set[str]) -> Disclosure:
        """The same commitment with only `names` disclosed."""
        return Disclosure(self.field_hashes, {n: f for n, f in self.fields.items() if n in names})

    def to_json(self) -> dict[str, Any]:
        return {
            "fieldHashes": [hex32(h) for h in sorted(self.field_hashes)],
            "fields": {n: {"value": f.value, "salt": hex32(f.salt)} for n, f in sorted(self.fields.items())},
        }

    @classmethod
    def from_json(cls, data: object) -> Disclosure:
        if not isinstance(data, dict):
            raise ValueError("payload: expected an object with fieldHashes and fields")
        extra = set(data) - {"fieldHashes", "fields"}
        if extra:
            raise ValueError(f"payload: unexpected fields {sorted(extra)}")
        hashes = data.get("fieldHashes")
        if not isinstance(hashes, list) or not hashes:
            raise ValueError("payload.fieldHashes: expected a non-empty list")
        if len(hashes) > MAX_FIELDS:
            raise ValueError(f"payload.fieldHashes: at most {MAX_FIELDS} fields")
        parsed = _hashes(hashes)
        if len(set(parsed)) != len(parsed):
            raise ValueError("payload.fieldHashes: duplicate hash")
        raw_fields = data.get("fields", {})
        if not isinstance(raw_fields, dict):
            raise ValueError("payload.fields: expected an object")
        fields: dict[str, DisclosedField] = {}
        for name, entry in raw_fields.items():
            if name not in _CHECKED_NAMES:
                _check_field_name(name)
                if len(_CHECKED_NAMES) < _CHECKED_NAMES_KEPT:
                    _CHECKED_NAMES.add(name)
            if not isinstance(entry, dict) or len(entry) != 2 or "value" not in entry or "salt" not in entry:
                raise ValueError(f"payload.fields.{name}: expected {{value, salt}}")
            value = entry["value"]
            canonical = canonical_json(value)
            salt = parse_hex(entry["salt"], 32, f"payload.fields.{name}.salt")
            fields[name] = DisclosedField(value, salt, canonical)
        return cls(parsed, fields)


def _hashes(hashes: list[Any]) -> tuple[bytes, ...]:
    """32-byte hashes from 0x-prefixed hex strings, as `parse_hex` reads each one, all
    parsed by one `bytes.fromhex` when every one has the right length (a record carries
    several, and a mirror parses millions); ValueError names the first bad one."""
    if all(type(h) is str and len(h) == 66 and h.startswith("0x") for h in hashes):
        with contextlib.suppress(ValueError):  # not hexadecimal: parse_hex below names the one
            joined = bytes.fromhex("".join([h[2:] for h in hashes]))
            # fromhex skips whitespace: then the bytes are fewer, and parse_hex refuses it.
            if len(joined) == 32 * len(hashes):
                return tuple(joined[i : i + 32] for i in range(0, len(joined), 32))
    return tuple(parse_hex(h, 32, f"payload.fieldHashes[{i}]") for i, h in enumerate(hashes))


@dataclass(frozen=True)
class Commitment:
    """A freshly committed payload: everything its owner needs to disclose later."""

    disclosure: Disclosure

    @property
    def payload_hash(self) -> bytes:
        return self.disclosure.payload_hash


def commit(fields: dict[str, Any], *, salts: dict[str, bytes] | None = None) -> Commitment:
    """Commit to `fields` with fresh random salts (or the given ones, for tests).

    The result discloses every field; use `Disclosure.restricted_to` to share fewer.
    """
    if not fields:
        raise ValueError("a payload needs at least one field")
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"a payload has at most {MAX_FIELDS} fields")
    disclosed: dict[str, DisclosedField] = {}
    for name, value in fields.items():
        _check_field_name(name)
        salt = (salts or {}).get(name) or secrets.token_bytes(32)
        disclosed[name] = DisclosedField(value, salt)
    hashes = tuple(field_hash(n, f.value, f.salt) for n, f in disclosed.items())
    return Commitment(Disclosure(hashes, disclosed))


_FIELD_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
# Field names already found valid: the same few recur in every payload, and a mirror
# parses millions of them. Bounded, so names a peer invents cannot grow it for ever.
_CHECKED_NAMES: set[str] = set()
_CHECKED_NAMES_KEPT = 4096


def _check_field_name(name: object) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_FIELD_NAME:
        raise ValueError(f"payload field name must be 1-{MAX_FIELD_NAME} characters")
    if _FIELD_NAME.fullmatch(name) is None:
        raise ValueError(f"payload field name {name!r}: only ASCII letters, digits, '_', '-', '.'")
