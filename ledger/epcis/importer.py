"""Mapping an EPCIS 2.0 document to the attestations its participant signs.

`plan_import` reads the document, picks each event's rule from `mapping.RULES`, resolves
what each attestation rests on (custody already on the ledger, or planned earlier in the
same document) and returns the unsigned plan; `sign_plan` signs it with the
participant's key. The server never needs the key: it can plan, the participant signs.

Promises:
- All or nothing: any event that cannot be mapped makes `plan_import` raise
  `ImportRefused`, listing every such event's key and reason; no plan, nothing signed.
- Idempotent: an event already recorded by this signer (same eventID, or same GS1 event
  hash) is not planned again; it is reported in `ImportPlan.already_recorded`. The one
  exception: an event recorded only as an Observation that now maps to a custody rule
  (a receipt whose hand-over reached the ledger since) is planned as that custody record.
- Identifiers are committed in their canonical GS1 form (`ledger.gs1`), so two spellings
  of the same goods are the same lot; a wrong check digit refuses the event.
"""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount

from ..eip712 import Domain
from ..fields import FieldError
from ..gs1 import GS1KeyError
from ..kinds import Kind
from ..submission import build_submission
from .document import read_document
from .mapping import rule_for
from .plan import (
    PLANNED,
    CustodyIndex,
    CustodyRecord,
    ImportContext,
    ImportPlan,
    ImportRefused,
    Party,
    PlannedAttestation,
    Unmappable,
)
from .planner import Planner, short_biz_step

__all__ = [
    "CustodyIndex",
    "CustodyRecord",
    "ImportContext",
    "ImportPlan",
    "ImportRefused",
    "Party",
    "PlannedAttestation",
    "plan_import",
    "sign_plan",
]


def plan_import(document: object, signer: str, context: ImportContext, index: CustodyIndex) -> ImportPlan:
    """The attestations `signer` signs for `document` (see the module's promises)."""
    from .document import DocumentError

    try:
        header, events = read_document(document)
    except DocumentError as exc:
        raise ImportRefused([("document", str(exc))]) from None
    planner = Planner(signer.lower(), context, index, header.get("@context"))
    problems: list[tuple[str, str]] = []
    already: dict[str, list[str]] = {}
    for event in events:
        done = index.recorded(event.key, signer) or index.recorded(event.event_hash, signer)
        body = event.body
        try:
            rule = rule_for(
                event.type, body.get("action"), short_biz_step(body.get("bizStep")), planner.condition(event)
            )
        except (Unmappable, GS1KeyError, FieldError) as exc:
            if done:  # recorded before; nothing to decide now
                already[event.key] = done
            else:
                problems.append((event.key, f"{event.label}: {exc}"))
            continue
        # A receipt recorded as an Observation because no hand-over awaited it then becomes
        # the acceptance once the hand-over is on the ledger: importing the same document
        # again records that, and nothing else (the ledger, not the document, changed).
        if done and (rule is None or rule.kind is Kind.OBSERVATION or index.kinds(done) != {Kind.OBSERVATION}):
            already[event.key] = done
            continue
        if rule is None:
            problems.append(
                (
                    event.key,
                    f"{event.label}: no mapping for a {event.type} with action {body.get('action')} and "
                    f"bizStep {body.get('bizStep')} (see docs/epcis-mapping.md)",
                )
            )
            continue
        try:
            planner.map(event, rule)
        except (Unmappable, GS1KeyError, FieldError) as exc:
            problems.append((event.key, f"{event.label} ({rule.name} → {rule.kind.type_name}): {exc}"))
    if problems:
        raise ImportRefused(problems)
    return ImportPlan(signer, planner.items, already)


def sign_plan(
    plan: ImportPlan, account: LocalAccount, domain: Domain, *, issued_at: int | None = None
) -> list[dict[str, Any]]:
    """Sign every planned attestation in order (earlier ones' UIDs filled into later refs)."""
    if account.address.lower() != plan.signer.lower():
        raise ValueError(f"the plan is for {plan.signer}, not {account.address}")
    now = int(time.time()) if issued_at is None else issued_at
    uids: list[str] = []
    out = []
    for item in plan.items:
        refs = [uids[int(r[len(PLANNED) :])] if r.startswith(PLANNED) else r for r in item.refs]
        submission = build_submission(
            account, item.kind, domain, item.fields, subject=item.subject, refs=refs, issued_at=now
        )
        uids.append(str(submission["uid"]))
        out.append(submission)
    return out
