"""The demo story the embedded setup starts with (development chain only).

A rights holder records an IP asset, licenses it for FR/DE/NL and puts pumps on its watch
list; a manufacturer produces a lot under the licence and hands it to a carrier, which
splits it between an exporter and an importer. The exporter ships 600 pieces to France:
VERIFIED. The importer's 400 pieces go back to the exporter, who ships them to the United
States, outside the licensed territories: FLAGGED (LICENCE_TERRITORY, WATCHLIST_HIT).
"""

from __future__ import annotations

import time
from typing import Any

from web3 import Web3

from .chain.accounts import dev_account, require_dev_chain
from .chain.client import call_and_send
from .chain.deploy import FOREVER
from .core import Ledger
from .kinds import Kind
from .roles import Role
from .submission import build_submission

CAST = {
    "rights_holder": (2, Role.RIGHTS_HOLDER),
    "maker": (3, Role.MANUFACTURER),
    "exporter": (4, Role.EXPORTER),
    "carrier": (5, Role.CARRIER),
    "customs": (6, Role.CUSTOMS),
    "importer": (8, Role.IMPORTER),
}


def admit_demo_participants(ledger: Ledger) -> None:
    """Accredit the demo cast with the registrar's well-known development key."""
    require_dev_chain(ledger.deployment.w3)
    registry = ledger.deployment.registry
    for name, (index, role) in CAST.items():
        account = dev_account(index)
        if registry.functions.participant(account.address).call()[4] != 0:  # validUntil set: already admitted
            continue
        call_and_send(
            ledger.deployment.w3,
            dev_account(0),
            registry.functions.admit(account.address, Web3.keccak(text=f"demo:{name}"), int(role), 0, FOREVER),
        )
        call_and_send(
            ledger.deployment.w3, dev_account(0), registry.functions.publishName(account.address, f"demo:{name}")
        )


def seed_demo(ledger: Ledger) -> dict[str, str]:
    """Record the demo story; returns the UIDs by step (the shipment under "shipment")."""
    admit_demo_participants(ledger)
    time.sleep(1.1)  # signatures must come after the admissions' block time
    t = max(int(time.time()), ledger.deployment.now())
    d = ledger.domain
    ids: dict[str, str] = {}

    def sign(step: str, who: str, kind: Kind, fields: dict[str, Any], subject: str, refs: list[str]) -> None:
        nonlocal t
        t += 1
        submission = build_submission(
            dev_account(CAST[who][0]), kind, d, fields, subject=subject, refs=refs, issued_at=t
        )
        ids[step] = ledger.ingest(submission).uid

    sign(
        "asset", "rights_holder", Kind.IP_ASSET, {"title": "Centrifugal pump impeller, rev. C"}, "asset:impeller-c", []
    )
    sign(
        "licence",
        "rights_holder",
        Kind.LICENCE,
        {
            "licensee": dev_account(3).address,
            "goodsClasses": ["8413"],
            "territories": ["FR", "DE", "NL"],
            "validFrom": 0,
            "validUntil": t + 365 * 86400,
            "quantityCap": 10_000,
            "sublicensing": False,
        },
        "licence:impeller-c:maker",
        [ids["asset"]],
    )
    sign(
        "watch",
        "rights_holder",
        Kind.WATCHLIST,
        {"goodsClasses": ["8413"], "note": "pumps need a licence"},
        "watch:pumps",
        [],
    )
    sign(
        "made",
        "maker",
        Kind.PRODUCTION,
        {"lot": "LOT-2026-0042", "quantity": 1000, "unit": "pcs", "goodsClass": "841370"},
        "lot:LOT-2026-0042",
        [ids["licence"]],
    )
    sign(
        "to_carrier",
        "maker",
        Kind.TRANSFER,
        {"lot": "LOT-2026-0042", "quantity": 1000, "unit": "pcs", "to": dev_account(5).address},
        "lot:LOT-2026-0042",
        [ids["made"]],
    )
    sign(
        "carrier_ok",
        "carrier",
        Kind.TRANSFER_ACCEPTANCE,
        {"note": "received sealed"},
        "lot:LOT-2026-0042",
        [ids["to_carrier"]],
    )
    sign(
        "to_exporter",
        "carrier",
        Kind.TRANSFER,
        {"lot": "LOT-2026-0042", "quantity": 600, "unit": "pcs", "to": dev_account(4).address},
        "lot:LOT-2026-0042",
        [ids["to_carrier"]],
    )
    sign(
        "to_importer",
        "carrier",
        Kind.TRANSFER,
        {"lot": "LOT-2026-0042", "quantity": 400, "unit": "pcs", "to": dev_account(8).address},
        "lot:LOT-2026-0042",
        [ids["to_carrier"]],
    )
    sign(
        "exporter_ok",
        "exporter",
        Kind.TRANSFER_ACCEPTANCE,
        {"note": "received"},
        "lot:LOT-2026-0042",
        [ids["to_exporter"]],
    )
    sign(
        "shipment",
        "exporter",
        Kind.SHIPMENT,
        {"quantity": 600, "unit": "pcs", "goodsClass": "841370", "destination": "FR", "shipmentId": "SHP-FR-0001"},
        "shipment:SHP-FR-0001",
        [ids["exporter_ok"]],
    )
    sign(
        "importer_back",
        "importer",
        Kind.TRANSFER,
        {"lot": "LOT-2026-0042", "quantity": 400, "unit": "pcs", "to": dev_account(4).address},
        "lot:LOT-2026-0042",
        [ids["to_importer"]],
    )
    sign(
        "flagged_shipment",
        "exporter",
        Kind.SHIPMENT,
        {"quantity": 400, "unit": "pcs", "goodsClass": "841370", "destination": "US", "shipmentId": "SHP-US-0002"},
        "shipment:SHP-US-0002",
        [ids["importer_back"]],
    )
    return ids
