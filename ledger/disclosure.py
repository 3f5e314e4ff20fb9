"""Selective disclosure after the fact: the holder's own salt store, disclosure documents,
and the check customs run against the anchored commitment.

When a holder signs, every field's salt — disclosed to the ledger or not — goes into the
holder's **local store**: one file next to the keystore, encrypted (AES-256-GCM) with a
key derived (HKDF-SHA256) from the keystore's private key, mode 0600, never sent
anywhere. Later the holder takes chosen fields from it into a **disclosure document**
(`provenance-ledger/disclosure@1`: the attestation's typed data, signature and uid, all
field hashes, and the chosen fields with their salts), which a customs officer checks at
a node (`check_disclosure`) or which goes into a proof bundle (`add_to_bundle`), where
the verification checks it against the same commitment.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .eip712 import attestation_uid, parse_typed_data
from .fields import RULES, FieldError
from .hashing import hex32, parse_hex
from .kinds import Kind
from .payload import Disclosure, field_hash
from .reasons import Reason

STORE_FORMAT = "provenance-ledger/holder-store@1"
DISCLOSURE_FORMAT = "provenance-ledger/disclosure@1"
_STORE_INFO = b"provenance-ledger holder salt store v1"


class DisclosureError(ValueError):
    """A disclosure cannot be made or read (unknown attestation, unknown field, bad file)."""


class UnknownAttestation(DisclosureError):
    """The node holds no attestation with the disclosed uid."""


def default_store_path(keystore: Path) -> Path:
    """Where the salts of what `keystore`'s key signs are kept: beside the keystore."""
    return keystore.with_name(keystore.name + ".disclosures")


class HolderStore:
    """The holder's encrypted record of everything it signed, with every field's salt.

    Readable only with the signing key itself; written with mode 0600 and replaced
    atomically, so an interrupted write never loses earlier entries; and each addition
    reads and rewrites the store under an exclusive lock (`STORE.lock`), so two `sign`
    runs at once both keep their salts."""

    def __init__(self, path: Path, private_key: bytes, holder: str) -> None:
        self.path = path
        self.holder = holder
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_STORE_INFO).derive(private_key)
        self._aead = AESGCM(key)

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every stored submission (uid -> full submission with all fields and salts)."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != STORE_FORMAT:
                raise ValueError(f"not a holder store (format must be {STORE_FORMAT!r})")
            nonce, sealed = bytes.fromhex(data["nonce"]), bytes.fromhex(data["ciphertext"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DisclosureError(f"cannot read the disclosure store {self.path}: {exc}") from None
        try:
            plaintext = self._aead.decrypt(nonce, sealed, self.holder.lower().encode())
        except (InvalidTag, ValueError):
            raise DisclosureError(
                f"the disclosure store {self.path} does not open with the key of {self.holder}: "
                "it belongs to another key or was altered"
            ) from None
        entries: dict[str, dict[str, Any]] = json.loads(plaintext)
        return entries

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """An exclusive advisory lock (flock) on the file beside the store, held across a
        read-modify-write: without it, of two runs that read the same store, the later
        write drops the other's entry, and with it the only copy of its salts. The lock
        file is never replaced (the store is), so both runs lock the same inode; the
        kernel releases the lock if the process dies."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def add(self, submission: dict[str, Any]) -> None:
        """Keep `submission` (as built, with every field disclosed) under its uid."""
        with self._exclusive():
            self._add(submission)

    def _add(self, submission: dict[str, Any]) -> None:
        entries = self.entries()
        entries[str(submission["uid"]).lower()] = submission
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(entries).encode(), self.holder.lower().encode())
        body = json.dumps(
            {"format": STORE_FORMAT, "holder": self.holder, "nonce": nonce.hex(), "ciphertext": sealed.hex()}
        )
        scratch = self.path.with_name(self.path.name + f".{secrets.token_hex(4)}.tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(body)
        os.replace(scratch, self.path)

    def get(self, uid: str) -> dict[str, Any]:
        """The stored submission `uid`; DisclosureError if this holder never signed it here."""
        entry = self.entries().get(uid.lower())
        if entry is None:
            raise DisclosureError(
                f"{uid} is not in the disclosure store {self.path} (signed with another key, or another store?)"
            )
        return entry


def check_field_names(kind: Kind, fields: dict[str, Any], names: set[str], option: str) -> None:
    """Refuse `names` (from --disclose or --confidential) that are not fields being signed,
    listing the fields there are: a typo must not silently disclose less than meant."""
    unknown = sorted(names - set(fields))
    if unknown:
        required, optional, _lo, _hi = RULES[kind]
        defined = ", ".join([*required, *(f"{n} (optional)" for n in optional)]) or "none"
        raise DisclosureError(
            f"{option}: {', '.join(unknown)} is not a field of this {kind.type_name}; "
            f"its fields are {', '.join(sorted(fields))} (the kind defines: {defined})"
        )


def make_disclosure(entry: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """A disclosure document revealing `names` of the stored submission `entry`."""
    full = Disclosure.from_json(entry["payload"])
    attestation, _domain = parse_typed_data(entry["typedData"])
    check_field_names(attestation.kind, {n: f.value for n, f in full.fields.items()}, names, "--fields")
    return {
        "format": DISCLOSURE_FORMAT,
        "uid": str(entry["uid"]).lower(),
        "typedData": entry["typedData"],
        "signature": entry["signature"],
        "payload": full.restricted_to(names).to_json(),
    }


def read_disclosure(document: object) -> tuple[str, Disclosure, dict[str, Any] | None]:
    """(uid, disclosure, typed data or None) of a disclosure document; DisclosureError
    naming what is malformed."""
    if not isinstance(document, dict) or document.get("format") != DISCLOSURE_FORMAT:
        raise DisclosureError(f"not a disclosure document (format must be {DISCLOSURE_FORMAT!r})")
    try:
        uid = hex32(parse_hex(document.get("uid"), 32, "uid"))
        disclosure = Disclosure.from_json(document.get("payload"))
    except ValueError as exc:
        raise DisclosureError(str(exc)) from None
    if not disclosure.fields:
        raise DisclosureError("payload.fields: the document discloses no field")
    typed = document.get("typedData")
    return uid, disclosure, typed if isinstance(typed, dict) else None


@dataclass(frozen=True)
class FieldCheck:
    """One disclosed field: does it recompute a committed field hash, and is it a valid value."""

    name: str
    valid: bool
    reason: Reason | None = None
    detail: str = ""
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.name,
            "valid": self.valid,
            "value": self.value if self.valid else None,
            "reason": self.reason.value if self.reason else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DisclosureCheck:
    """The answer to "do these disclosed fields check out against the anchored commitment"."""

    uid: str
    kind: str
    attester: str
    anchor: dict[str, Any]
    fields: list[FieldCheck] = field(default_factory=list)
    problem: str = ""  # a reason the whole document fails (uid mismatch)

    @property
    def valid(self) -> bool:
        """True only when every disclosed field checks out and the commitment is anchored."""
        return (
            not self.problem
            and all(f.valid for f in self.fields)
            and self.anchor.get("status")
            in (
                "anchored",
                "direct",
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "kind": self.kind,
            "attester": self.attester,
            "anchor": self.anchor,
            "valid": self.valid,
            "problem": self.problem or None,
            "fields": [f.to_json() for f in self.fields],
        }


class AttestationReader(Protocol):
    def get_attestation(self, uid: str, *, include_confidential: bool = False) -> dict[str, Any] | None: ...


def check_disclosure(node: AttestationReader, document: object) -> DisclosureCheck:
    """Check a disclosure document against the commitment `node` holds for its uid.

    Each disclosed field is valid when its value and salt recompute one of the field
    hashes the signed (and anchored) payload hash commits to, and the value obeys its
    kind's rule; otherwise it is refused with PAYLOAD_MISMATCH or FIELD_INVALID and why.
    Raises DisclosureError for a malformed document or an attestation the node does not
    hold. The document's own typed data, when present, must hash to its uid."""
    uid, disclosure, typed = read_disclosure(document)
    stored = node.get_attestation(uid)
    if stored is None:
        raise UnknownAttestation(f"no attestation {uid} at this node")
    attestation, _domain = parse_typed_data(stored["typedData"])
    committed = {parse_hex(h, 32, "fieldHashes") for h in stored["payload"]["fieldHashes"]}
    problem = ""
    if typed is not None:
        try:
            shown, shown_domain = parse_typed_data(typed)
            if hex32(attestation_uid(shown, shown_domain)) != uid:
                problem = f"{Reason.UID_MISMATCH.value}: the document's typed data does not hash to {uid}"
        except ValueError as exc:
            problem = f"{Reason.MALFORMED.value}: typedData: {exc}"
    required, optional, _lo, _hi = RULES[attestation.kind]
    rules = {**required, **optional}
    checks = []
    for name, disclosed in sorted(disclosure.fields.items()):
        if field_hash(name, disclosed.value, disclosed.salt) not in committed:
            checks.append(
                FieldCheck(
                    name,
                    False,
                    Reason.PAYLOAD_MISMATCH,
                    f"the value or salt of {name!r} does not recompute any field hash the signed payload commits to",
                )
            )
            continue
        try:
            if name in rules:
                rules[name](name, disclosed.value)
        except FieldError as exc:
            checks.append(FieldCheck(name, False, Reason.FIELD_INVALID, str(exc)))
            continue
        checks.append(FieldCheck(name, True, value=disclosed.value, detail="matches the committed field hash"))
    return DisclosureCheck(uid, attestation.kind.type_name, attestation.attester, stored["anchor"], checks, problem)


def add_to_bundle(bundle: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """`bundle` with the fields of `document` added to its entry for the same uid.

    Only fields that recompute one of that entry's committed field hashes are added
    (DisclosureError otherwise): a holder cannot slip an unchecked value into evidence."""
    uid, disclosure, _typed = read_disclosure(document)
    entries = bundle.get("attestations")
    if not isinstance(entries, list):
        raise DisclosureError("not a proof bundle: no attestations list")
    for entry in entries:
        if isinstance(entry, dict) and str(entry.get("uid", "")).lower() == uid:
            shown = Disclosure.from_json(entry.get("payload"))
            bad = [
                n for n, f in disclosure.fields.items() if field_hash(n, f.value, f.salt) not in set(shown.field_hashes)
            ]
            if bad:
                raise DisclosureError(f"{', '.join(sorted(bad))}: does not match the committed field hashes of {uid}")
            merged = Disclosure(shown.field_hashes, {**shown.fields, **disclosure.fields})
            entry["payload"] = merged.to_json()
            return bundle
    raise DisclosureError(f"{uid} is not among the bundle's attestations")
