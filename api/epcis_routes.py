"""The `/v1/epcis` endpoints and EPCIS exports. The server never holds a participant's
key: it maps a document to the attestations to sign (`/epcis/map`), stores an import the
participant signed all or nothing (`/epcis/import`), and exports custody as EPCIS 2.0."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path

from ledger.access import ApiKey
from ledger.core import Ledger
from ledger.epcis.importer import ImportContext, ImportRefused, Party, plan_import
from ledger.epcis.ledger_index import StoreIndex
from ledger.epcis.service import ImportRejected, export_lot, export_shipment, import_signed
from ledger.gs1 import GS1KeyError

from .deps import get_ledger, optional_key, require
from .routes import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1", tags=["epcis"], responses=PROBLEM_RESPONSES)


@router.post("/epcis/map", summary="Map an EPCIS 2.0 document to the attestations its participant signs")
def map_document(
    document: dict[str, Any] = Body(..., description="the EPCIS 2.0 document"),
    signer: str = Body(..., pattern=r"^0x[0-9a-fA-F]{40}$"),
    parties: dict[str, dict[str, str]] = Body(default_factory=dict, description="GS1 party key → {address, country}"),
    goods_classes: dict[str, str] = Body(default_factory=dict, alias="goodsClasses", description="GTIN → HS code"),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey | None = Depends(optional_key),
) -> dict[str, Any]:
    """Unsigned: kind, subject, fields and refs per attestation (`planned:<n>` refers to an
    earlier item). Sign each with `build_submission` and send them to `/v1/epcis/import`."""
    try:
        context = ImportContext(
            parties={k: Party(v["address"], v.get("country")) for k, v in parties.items()},
            goods_classes=goods_classes,
        )
        plan = plan_import(document, signer, context, StoreIndex(ledger.sessions))
    except ImportRefused as exc:
        raise HTTPException(422, f"nothing mapped: {exc}") from None
    except (GS1KeyError, KeyError) as exc:
        raise HTTPException(422, f"import context: {exc}") from None
    return plan.to_json()


@router.post("/epcis/import", status_code=201, summary="Store a signed EPCIS import, all or nothing")
def import_document(
    submissions: list[dict[str, Any]] = Body(..., max_length=1000),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey | None = Depends(optional_key),
) -> dict[str, Any]:
    try:
        stored = import_signed(ledger, submissions)
    except ImportRejected as exc:
        raise HTTPException(422, f"nothing stored: {exc}") from None
    return {"results": [a.to_json() for a in stored], "created": sum(a.created for a in stored)}


@router.get("/lots/{lot:path}/epcis", summary="A lot's recorded events as an EPCIS 2.0 document")
def lot_epcis(
    lot: str = Path(max_length=300),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("auditor", "customs")),
) -> dict[str, Any]:
    return export_lot(ledger, lot)


@router.get("/shipments/{uid}/epcis", summary="A shipment's custody history as an EPCIS 2.0 document")
def shipment_epcis(
    uid: str = Path(pattern=r"^0x[0-9a-fA-F]{64}$"),
    ledger: Ledger = Depends(get_ledger),
    _key: ApiKey = Depends(require("auditor", "customs")),
) -> dict[str, Any]:
    return export_shipment(ledger, uid)
