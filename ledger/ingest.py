"""Ingest: validate a signed attestation completely, then store it durably.

Nothing is acknowledged before it is committed, and nothing invalid is stored. The
checks, in order: shape, EIP-712 typed data of this ledger's own types, domain (chain
and contract), signature (strict, ERC-1271 for wallets), payload disclosure against the
signed commitment, the kind's field rules, signing time, the attester's standing in the
on-chain registry at signing time, and that referenced attestations exist. Submitting
the same signed attestation again returns the same UID and stores nothing new.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .eip712 import Attestation, Domain, parse_typed_data
from .epcis.keys import event_key_rows
from .fields import ALWAYS_PUBLIC, field_errors
from .hashing import hex32, parse_hex
from .json_shape import MAX_PARSED_PER_BYTE, RECORD_PARSE_SLACK, json_shape, parsed_bytes_bound
from .kinds import Kind
from .payload import Disclosure
from .reasons import Reason
from .registry_view import RegistryView
from .sealing import Sealer
from .signatures import SignatureChecker, SignatureProblem
from .store.aggregates import add_to_aggregates
from .store.db import lock_for_append
from .store.models import AttestationRefRow, AttestationRow, EpcisEventRow, WatchlistClassRow

log = logging.getLogger(__name__)
_PLAIN_KEYS = SignatureChecker()  # recovers plain-key signers only: never calls a wallet

MAX_CLOCK_SKEW = 300
SUBMISSION_KEYS = {"typedData", "signature", "payload", "confidential", "uid"}


class Rejected(Exception):
    """An attestation was refused; `reason` is a stable code, `field` names the culprit."""

    def __init__(
        self,
        reason: Reason,
        detail: str,
        field: str | None = None,
        uid: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        self.uid = uid
        # Every problem found when there are several (field rules): {field, reason, detail}.
        self.errors = errors or []
        super().__init__(f"{reason.value}: {detail}")

    def to_json(self) -> dict[str, Any]:
        shaped: dict[str, Any] = {
            "status": "rejected",
            "reason": self.reason.value,
            "field": self.field,
            "detail": self.detail,
            "uid": self.uid,
        }
        if self.errors:
            shaped["errors"] = self.errors
        return shaped


@dataclass(frozen=True)
class Accepted:
    """An attestation is durably stored (`created`) or was already (`created` False)."""

    uid: str
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {"status": "created" if self.created else "exists", "uid": self.uid}


@dataclass(frozen=True)
class Prepared:
    attestation: Attestation
    uid: bytes
    signature: bytes
    disclosure: Disclosure
    confidential: frozenset[str]


class Ingestor:
    """Validates and stores attestations for one deployment (one EIP-712 domain)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        domain: Domain,
        registry: RegistryView,
        checker: SignatureChecker,
        sealer: Sealer,
        *,
        refresh_registry: Callable[..., None] | None = None,
        clock: Callable[[], float] = time.time,
        max_signature_age: int = 86_400,
    ) -> None:
        self._sessions = sessions
        self._domain = domain
        self._registry = registry
        self._checker = checker
        self._sealer = sealer
        self._refresh_registry = refresh_registry
        self._clock = clock
        self._max_signature_age = max_signature_age

    # ------------------------------------------------------------------ validation

    def prepare(self, raw: object) -> Prepared:
        """Every check that needs no database; raises `Rejected`."""
        if not isinstance(raw, dict):
            raise Rejected(Reason.MALFORMED, "expected an object with typedData, signature and payload")
        unexpected = set(raw) - SUBMISSION_KEYS
        if unexpected:
            raise Rejected(Reason.MALFORMED, f"unexpected fields {sorted(unexpected)}", sorted(unexpected)[0])
        for required in ("typedData", "signature", "payload"):
            if required not in raw:
                raise Rejected(Reason.MALFORMED, f"missing {required}", required)
        try:
            attestation, domain = parse_typed_data(raw["typedData"])
        except ValueError as exc:
            raise Rejected(Reason.MALFORMED, str(exc), "typedData") from None
        if domain != self._domain:
            raise Rejected(
                Reason.WRONG_DOMAIN,
                f"signed for chain {domain.chain_id} contract {domain.verifying_contract} ({domain.name} "
                f"v{domain.version}); this ledger is chain {self._domain.chain_id} contract "
                f"{self._domain.verifying_contract}",
                "typedData.domain",
            )
        try:
            signature = parse_hex(raw["signature"], 65, "signature")
        except ValueError as exc:
            raise Rejected(Reason.BAD_SIGNATURE, str(exc), "signature") from None
        result = _PLAIN_KEYS.check(attestation, domain, signature)
        if not result.valid and result.problem is SignatureProblem.WRONG_SIGNER:
            # Maybe a smart-contract wallet: consult the registry before any wallet call,
            # so an unaccredited "signer" never gets the node to run its code.
            self._check_standing(attestation, hex32(result.uid))
            try:
                result = self._checker.check(attestation, domain, signature)
            except Exception as exc:  # noqa: BLE001 - the ERC-1271 path may hit an unreachable node
                raise Rejected(Reason.CHAIN_UNAVAILABLE, f"cannot ask the chain about a wallet signer: {exc}") from None
        uid = hex32(result.uid)
        if "uid" in raw and str(raw["uid"]).lower() != uid:
            raise Rejected(Reason.UID_MISMATCH, f"uid given {raw['uid']!r} but the typed data hashes to {uid}", "uid")
        if not result.valid:
            assert result.problem is not None
            raise Rejected(Reason.BAD_SIGNATURE, result.problem.value, "signature", uid)
        try:
            disclosure = Disclosure.from_json(raw["payload"])
        except ValueError as exc:
            raise Rejected(Reason.MALFORMED, str(exc), "payload", uid) from None
        problems = disclosure.problems(attestation.payload_hash)
        if problems:
            raise Rejected(Reason.PAYLOAD_MISMATCH, "; ".join(problems), "payload", uid)
        errors = field_errors(attestation.kind, disclosure, len(attestation.refs))
        if errors:  # every problem at once, so one correction round is enough
            raise Rejected(
                Reason.FIELD_INVALID,
                "; ".join(str(e) for e in errors),
                errors[0].field,
                uid,
                errors=[{"field": e.field, "reason": Reason.FIELD_INVALID.value, "detail": str(e)} for e in errors],
            )
        confidential = raw.get("confidential", [])
        if not isinstance(confidential, list) or not all(isinstance(n, str) for n in confidential):
            raise Rejected(Reason.MALFORMED, "confidential: expected a list of field names", "confidential", uid)
        if not set(confidential) <= set(disclosure.fields):
            raise Rejected(Reason.MALFORMED, "confidential names fields that are not disclosed", "confidential", uid)
        kept_back = sorted(ALWAYS_PUBLIC.get(attestation.kind, frozenset()) & set(confidential))
        if kept_back:
            raise Rejected(
                Reason.FIELD_INVALID,
                f"{', '.join(kept_back)} of a {attestation.kind.type_name} is always public "
                "(every node must be able to read it); it cannot be confidential",
                "confidential",
                uid,
            )
        dense = density_problem(disclosure, frozenset(confidential))
        if dense is not None:
            raise Rejected(Reason.FIELD_INVALID, dense, "payload.fields", uid)
        self._check_signing_time(attestation, uid)
        self._check_standing(attestation, uid)
        return Prepared(attestation, result.uid, signature, disclosure, frozenset(confidential))

    def _check_signing_time(self, attestation: Attestation, uid: str) -> None:
        """The signer chooses `issuedAt`: bound it on both sides. Not after now (beyond a
        clock skew), and not older than the deployment's maximum signature age, so a key
        that lost its standing cannot mint records dated to when it still had it."""
        now = self._clock()
        field = "typedData.message.issuedAt"
        if attestation.issued_at > now + MAX_CLOCK_SKEW:
            raise Rejected(
                Reason.ISSUED_IN_FUTURE, f"issuedAt {attestation.issued_at} is after now ({int(now)})", field, uid
            )
        if attestation.issued_at < now - self._max_signature_age:
            raise Rejected(
                Reason.SIGNATURE_TOO_OLD,
                f"issuedAt {attestation.issued_at} is more than the maximum signature age "
                f"({self._max_signature_age} s) before now ({int(now)}); sign it again",
                field,
                uid,
            )
        if attestation.expires_at and attestation.expires_at <= now:
            raise Rejected(Reason.EXPIRED, f"expired at {attestation.expires_at}", "typedData.message.expiresAt", uid)

    def _check_standing(self, attestation: Attestation, uid: str) -> None:
        if self._refresh_registry is not None:
            try:
                self._refresh_registry(attestation.issued_at)
            except Exception as exc:  # noqa: BLE001 - keep accepting on the indexed history while the chain is down
                log.warning("registry refresh failed, using indexed history: %s", exc)
        standing = self._registry.standing(attestation.attester, attestation.issued_at)
        problem = standing.allows(attestation.kind.required_roles)
        if problem is not None and self._refresh_registry is not None:
            # Before refusing, look at the newest block once: the registrar may have just
            # admitted this signer (one head read; logs are read again only when the head moved).
            try:
                self._refresh_registry(attestation.issued_at, force=True)
            except Exception as exc:  # noqa: BLE001 - refuse on what is known
                log.warning("registry refresh failed: %s", exc)
            problem = self._registry.standing(attestation.attester, attestation.issued_at).allows(
                attestation.kind.required_roles
            )
        if problem is not None:
            needed = ", ".join(attestation.kind.required_roles.names())
            raise Rejected(
                problem,
                f"{attestation.attester} at {attestation.issued_at}: {problem.info.meaning} (a "
                f"{attestation.kind.type_name} needs one of: {needed})",
                "typedData.message.attester",
                uid,
            )

    # --------------------------------------------------------------------- storing

    def ingest(self, raw: object) -> Accepted:
        """Validate and store one attestation; raises `Rejected`."""
        result = self.ingest_many([raw])[0]
        if isinstance(result, Rejected):
            raise result
        return result

    def ingest_many(self, raws: Sequence[object]) -> list[Accepted | Rejected]:
        """Validate each item and store the valid ones in one transaction.

        Items may reference earlier items of the same call. Returns one result per item,
        in order; the accepted ones are committed when this returns.
        """
        results: list[Accepted | Rejected | Prepared] = []
        for raw in raws:
            try:
                results.append(self.prepare(raw))
            except Rejected as exc:
                results.append(exc)
        prepared = [r for r in results if isinstance(r, Prepared)]
        if prepared:
            self._store(results, prepared)
        final = [r for r in results if isinstance(r, Accepted | Rejected)]
        assert len(final) == len(raws), "every prepared item was stored or rejected"
        return final

    def _store(self, results: list[Accepted | Rejected | Prepared], prepared: list[Prepared]) -> None:
        """Store the prepared items, deciding each one's result; `results` is updated
        only once the transaction committed. A concurrent request storing some of the
        same attestations first makes the insert fail on the unique UID: then the
        transaction is retried, now reading those as existing (200, not 500)."""
        attempts = 3
        for attempt in range(attempts):
            try:
                decided = self._store_once(results, prepared)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
                continue
            for i, result in decided.items():
                results[i] = result
            return

    def _store_once(
        self, results: list[Accepted | Rejected | Prepared], prepared: list[Prepared]
    ) -> dict[int, Accepted | Rejected]:
        decided: dict[int, Accepted | Rejected] = {}
        now = self._clock()
        uids = {hex32(p.uid) for p in prepared}
        refs = {hex32(r) for p in prepared for r in p.attestation.refs}
        with self._sessions.begin() as session:
            # First: serialised with every other append (ids visible in order), and what
            # exists is read with no other append in between.
            lock_for_append(session)
            existing = set(session.scalars(select(AttestationRow.uid).where(AttestationRow.uid.in_(uids))))
            attesters: dict[str, str] = {
                row.uid: row.attester
                for row in session.execute(
                    select(AttestationRow.uid, AttestationRow.attester).where(AttestationRow.uid.in_(refs - uids))
                )
            }
            known_refs = set(attesters)
            stored_now: set[str] = set()
            rows: list[dict[str, Any]] = []
            reference_rows: list[dict[str, Any]] = []
            watch_rows: list[dict[str, Any]] = []
            epcis_rows: list[dict[str, Any]] = []
            for i, item in enumerate(results):
                if not isinstance(item, Prepared):
                    continue
                uid = hex32(item.uid)
                if uid in existing or uid in stored_now:
                    decided[i] = Accepted(uid, created=False)
                    continue
                missing = [
                    hex32(r)
                    for r in item.attestation.refs
                    if hex32(r) not in known_refs and hex32(r) not in existing and hex32(r) not in stored_now
                ]
                if missing:
                    decided[i] = Rejected(
                        Reason.UNKNOWN_REFERENCE,
                        f"references unknown attestation(s) {missing}",
                        "typedData.message.refs",
                        uid,
                    )
                    continue
                unentitled = _unentitled_revocation(item, attesters)
                if unentitled is not None:
                    decided[i] = Rejected(Reason.NOT_ENTITLED, unentitled, "typedData.message.refs", uid)
                    continue
                rows.append(self.row_for(item, uid, now))
                watch_rows.extend(watchlist_class_rows(item, uid))
                epcis_rows.extend(epcis_event_rows(item, uid))
                attesters[uid] = item.attestation.attester.lower()
                reference_rows.extend(ref_rows(item, uid))
                stored_now.add(uid)
                decided[i] = Accepted(uid, created=True)
            # Parents first: references point at attestation rows by foreign key.
            if rows:
                session.execute(insert(AttestationRow), rows)
                add_to_aggregates(session, rows)
            if reference_rows:
                session.execute(insert(AttestationRefRow), reference_rows)
            if watch_rows:
                session.execute(insert(WatchlistClassRow), watch_rows)
            if epcis_rows:
                session.execute(insert(EpcisEventRow), epcis_rows)
        return decided

    def row_for(self, item: Prepared, uid: str, now: float) -> dict[str, Any]:
        """The attestation row of a validated item (confidential fields sealed)."""
        secret = {
            n: {"value": f.value, "salt": hex32(f.salt)}
            for n, f in item.disclosure.fields.items()
            if n in item.confidential
        }
        sealed = self._sealer.seal(secret, item.uid) if secret else None
        return attestation_row(item, uid, self._domain, now, sealed)


# json.dumps(..., sort_keys=True) builds a new encoder on every call; this one is built once.
_sorted_json = json.JSONEncoder(sort_keys=True).encode


def density_problem(disclosure: Disclosure, confidential: frozenset[str]) -> str | None:
    """Why the public disclosed arrays and objects of a record are too dense to accept
    (many tiny values per byte), or None. Strings and numbers alone are never too dense.

    Mirroring nodes refuse, unparsed, a batch document much denser than its size
    (`ledger.peers`): a record accepted here must never make its batch that dense, or
    one signer's record would stall every node's completeness. So the values are
    measured as they are stored and served (`_sorted_json`: a float such as 1e20 is 5
    bytes there, 21 canonically), and only the public ones (confidential values are
    never served)."""
    size = bound = 0
    for name, disclosed in disclosure.fields.items():
        if name not in confidential and isinstance(disclosed.value, (list, dict)):
            served = _sorted_json(disclosed.value).encode()
            size += len(served)
            bound += parsed_bytes_bound(len(served), json_shape(served))
    allowance = MAX_PARSED_PER_BYTE * size + RECORD_PARSE_SLACK
    if bound <= allowance:
        return None
    return (
        f"disclosed arrays and objects too dense: {size:,} bytes that would take up to {bound:,} bytes "
        f"to parse (at most {allowance:,}); send fewer, larger values"
    )


def attestation_row(item: Prepared, uid: str, domain: Domain, now: float, sealed: bytes | None) -> dict[str, Any]:
    """The attestation row of a checked item: its public fields in the clear, its
    confidential ones only as `sealed` (None when it has none), no batch yet."""
    a = item.attestation
    public = {
        n: {"value": f.value, "salt": hex32(f.salt)}
        for n, f in item.disclosure.fields.items()
        if n not in item.confidential
    }
    return {
        "uid": uid,
        "kind": int(a.kind),
        "attester": a.attester.lower(),
        "subject": hex32(a.subject),
        "payload_hash": hex32(a.payload_hash),
        "issued_at": a.issued_at,
        "expires_at": a.expires_at,
        "signature": "0x" + item.signature.hex(),
        "chain_id": domain.chain_id,
        "contract": domain.verifying_contract.lower(),
        "field_hashes": json.dumps(sorted(hex32(h) for h in item.disclosure.field_hashes)),
        "disclosed": _sorted_json(public),
        "sealed": sealed,
        "received_at": now,
        "batch_id": None,
        "direct_tx": None,
    }


def ref_rows(item: Prepared, uid: str) -> list[dict[str, Any]]:
    """The item's references, one row each, in its signed order."""
    kind = int(item.attestation.kind)
    return [
        {"uid": uid, "position": pos, "ref": hex32(ref), "kind": kind} for pos, ref in enumerate(item.attestation.refs)
    ]


def _unentitled_revocation(item: Prepared, attesters: dict[str, str]) -> str | None:
    """Why `item` may not be stored when it revokes a record someone else signed (only a
    record's own attester may revoke it), else None."""
    if item.attestation.kind is not Kind.REVOCATION:
        return None
    signer = item.attestation.attester.lower()
    for ref in item.attestation.refs:
        target = attesters.get(hex32(ref))
        if target is not None and target != signer:
            return f"only the attester of {hex32(ref)} ({target}) may revoke it, not {signer}"
    return None


def epcis_event_rows(item: Prepared, uid: str) -> list[dict[str, Any]]:
    """Index rows of the EPCIS event the item records, if any (its public fields only)."""
    public = {n: f.value for n, f in item.disclosure.fields.items() if n not in item.confidential}
    return event_key_rows(uid, item.attestation.attester, public)


def watchlist_class_rows(item: Prepared, uid: str) -> list[dict[str, Any]]:
    """Index rows for a watch-list entry's goods classes (confidential or not)."""
    if item.attestation.kind is not Kind.WATCHLIST:
        return []
    classes = item.disclosure.value("goodsClasses", [])
    return [{"uid": uid, "goods_class": c} for c in sorted(set(classes))]
