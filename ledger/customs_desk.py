"""What the customs officer's console needs from the core: find shipments from what an
officer has in hand (a shipment id, a lot or SSCC, a GS1 Digital Link), the work queue
of recent FLAGGED and UNVERIFIABLE verifications, and findings signed with the
administration's customs key.

The customs key is the administration's, held by the service: an encrypted keystore
(PROVENANCE_CUSTOMS_KEYSTORE, password from PROVENANCE_KEY_PASSWORD); without one, the
well-known development customs key (dev account 6), and only on a development chain.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from .access import ApiKey
from .chain.accounts import dev_account, load_keystore, require_dev_chain
from .core import Ledger
from .gs1 import GS1KeyError, parse_key
from .hashing import checksum_address
from .kinds import Kind
from .store.models import AccessLogRow, ApiKeyRow, AttestationRefRow, AttestationRow
from .submission import build_submission, subject_id

# What an officer may record, and what each means. The benign ones leave a verdict as it
# is (see ledger.verify.checks.prior_findings); the others flag the goods' history.
FINDING_CODES = {
    "INSPECTED_OK": "Inspected: goods as declared",
    "RELEASED": "Released",
    "DETAINED": "Detained for inspection",
    "SEIZED": "Seized",
    "COUNTERFEIT_SUSPECTED": "Suspected counterfeit",
}
DEV_CUSTOMS_ACCOUNT = 6
QUEUE_VERDICTS = ("FLAGGED", "UNVERIFIABLE")
_MAX_HOPS = 64


class FindingRefused(ValueError):
    """A finding that cannot be recorded (unknown code, unknown shipment); says why."""


def customs_signer(ledger: Ledger) -> LocalAccount:
    """The administration's customs key: the configured keystore, else the development
    customs key on a development chain only (refused anywhere else)."""
    if ledger.settings.customs_keystore is not None:
        return load_keystore(ledger.settings.customs_keystore)
    require_dev_chain(ledger.deployment.w3)
    return dev_account(DEV_CUSTOMS_ACCOUNT)


def record_finding(ledger: Ledger, shipment_uid: str, finding: str, note: str = "") -> dict[str, Any]:
    """Sign a CustomsFinding on `shipment_uid` with the customs key and ingest it."""
    if finding not in FINDING_CODES:
        raise FindingRefused(f"unknown finding {finding!r}; one of {', '.join(FINDING_CODES)}")
    uid = shipment_uid.lower()
    with ledger.sessions() as session:
        row = session.scalar(select(AttestationRow).where(AttestationRow.uid == uid))
    if row is None or Kind(row.kind) is not Kind.SHIPMENT:
        raise FindingRefused(f"no shipment {shipment_uid} in this ledger")
    account = customs_signer(ledger)
    fields: dict[str, Any] = {"finding": finding}
    if note.strip():
        fields["note"] = note.strip()
    try:
        chain_now = ledger.deployment.now()
    except Exception:  # noqa: BLE001 - the chain may be down; the wall clock then
        chain_now = 0
    submission = build_submission(
        account,
        Kind.CUSTOMS_FINDING,
        ledger.domain,
        fields,
        subject=f"finding:{uid}",
        refs=[uid],
        issued_at=max(int(time.time()), chain_now),
    )
    accepted = ledger.ingest(submission)
    return {"uid": accepted.uid, "attester": checksum_address(account.address), "finding": finding}


@dataclass(frozen=True)
class Lookup:
    """Shipments matching an officer's query and how the query was read."""

    query: str
    read_as: list[str]
    shipments: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "readAs": self.read_as, "shipments": self.shipments}


def find_shipments(ledger: Ledger, query: str, limit: int = 20) -> Lookup:
    """Shipments named by `query`: a shipment UID, a shipment id (subject
    `shipment:<id>`), a lot (subject `lot:<lot>`: the shipments its custody reaches), or
    a GS1 key (Digital Link, EPC URN, element string) read as its canonical form, its
    batch/lot number and its SSCC."""
    text = query.strip()
    read_as: list[str] = []
    names = [text]
    try:
        key = parse_key(text)
    except GS1KeyError:
        key = None
    if key is not None:
        read_as.append(f"GS1 {key.scheme.upper()} {key.canonical}")
        names.append(key.canonical)
        for element in _elements(key.element_string):
            if element[0] in ("10", "00", "21"):
                names.append(element[1])
    found: dict[str, AttestationRow] = {}
    with ledger.sessions() as session:
        if text.lower().startswith("0x") and len(text) == 66:
            row = session.scalar(select(AttestationRow).where(AttestationRow.uid == text.lower()))
            if row is not None and Kind(row.kind) is Kind.SHIPMENT:
                read_as.append("shipment UID")
                found[row.uid] = row
        for name in dict.fromkeys(names):
            rows = session.scalars(
                select(AttestationRow).where(
                    AttestationRow.subject == "0x" + subject_id(f"shipment:{name}").hex(),
                    AttestationRow.kind == int(Kind.SHIPMENT),
                )
            ).all()
            if rows:
                read_as.append(f"shipment id {name}")
            found.update({r.uid: r for r in rows})
            lot_rows = session.scalars(
                select(AttestationRow).where(AttestationRow.subject == "0x" + subject_id(f"lot:{name}").hex())
            ).all()
            if lot_rows:
                read_as.append(f"lot {name}")
                for row in _shipments_reached(session, [r.uid for r in lot_rows]):
                    found[row.uid] = row
    shipments = sorted(found.values(), key=lambda r: -r.issued_at)[:limit]
    return Lookup(text, read_as, [_shipment_summary(r) for r in shipments])


def _elements(element_string: str) -> list[tuple[str, str]]:
    """(AI, value) pairs of a bracketed GS1 element string `(01)…(10)…`."""
    out = []
    for part in element_string.split("(")[1:]:
        ai, _, value = part.partition(")")
        out.append((ai, value))
    return out


def _shipments_reached(session: Any, start: list[str]) -> list[AttestationRow]:
    """Shipments whose references reach any of `start` (following custody forward)."""
    seen, frontier, shipments = set(start), list(start), []
    for _ in range(_MAX_HOPS):
        if not frontier:
            break
        children = session.scalars(
            select(AttestationRow)
            .join(AttestationRefRow, AttestationRefRow.uid == AttestationRow.uid)
            .where(AttestationRefRow.ref.in_(frontier))
        ).all()
        frontier = []
        for child in children:
            if child.uid in seen:
                continue
            seen.add(child.uid)
            if Kind(child.kind) is Kind.SHIPMENT:
                shipments.append(child)
            elif Kind(child.kind) in (Kind.TRANSFER, Kind.TRANSFER_ACCEPTANCE, Kind.PRODUCTION):
                frontier.append(child.uid)
    return shipments


def _shipment_summary(row: AttestationRow) -> dict[str, Any]:
    fields = {k: v["value"] for k, v in json.loads(row.disclosed).items()}
    return {
        "uid": row.uid,
        "exporter": checksum_address(row.attester),
        "issuedAt": row.issued_at,
        "shipmentId": fields.get("shipmentId"),
        "destination": fields.get("destination"),
        "quantity": fields.get("quantity"),
        "unit": fields.get("unit"),
        "goodsClass": fields.get("goodsClass"),
    }


def work_queue(ledger: Ledger, verdicts: tuple[str, ...] = QUEUE_VERDICTS, limit: int = 50) -> list[dict[str, Any]]:
    """Recent verifications with one of `verdicts` from the access log, newest first, one
    entry per shipment (its latest verification), with who asked."""
    wanted = [v for v in verdicts if v in QUEUE_VERDICTS]
    with ledger.sessions() as session:
        rows = session.execute(
            select(AccessLogRow, ApiKeyRow.name)
            .join(ApiKeyRow, ApiKeyRow.id == AccessLogRow.key_id, isouter=True)
            .order_by(AccessLogRow.at.desc(), AccessLogRow.id.desc())
            .limit(max(limit * 20, 200))
        ).all()
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry, key_name in rows:
        if entry.shipment in seen:
            continue
        seen.add(entry.shipment)
        if entry.verdict not in wanted:
            continue  # its latest verification is not one the queue shows
        entries.append(
            {
                "at": entry.at,
                "shipment": entry.shipment,
                "verdict": entry.verdict,
                "action": entry.action,
                "askedBy": key_name or entry.key_id,
                "openable": entry.shipment.startswith("0x"),
            }
        )
        if len(entries) >= limit:
            break
    return entries


def whoami(key: ApiKey) -> dict[str, Any]:
    return {"name": key.name, "scopes": sorted(key.scopes)}
