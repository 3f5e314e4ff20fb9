"""Story builders shared by tests: accredited actors signing real attestations."""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.chain.accounts import dev_account
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.submission import build_submission

from .conftest import ACTORS


def actor(name: str) -> LocalAccount:
    return dev_account(ACTORS[name])


def signing_time(ledger: Ledger) -> int:
    """'Now' for a signer: anvil's block clock runs ahead of the wall clock when many
    blocks are mined per second, and a signature must not predate its key's admission."""
    try:
        chain_now = ledger.deployment.now()
    except Exception:  # noqa: BLE001 - the chain is down in outage tests: the wall clock it is
        chain_now = 0
    return max(int(time.time()), chain_now)


def productions(ledger: Ledger, count: int, *, prefix: str = "LOT") -> list[dict[str, Any]]:
    """`count` production attestations by the accredited maker, each for its own lot."""
    now = signing_time(ledger)
    return [
        build_submission(
            actor("maker"),
            Kind.PRODUCTION,
            ledger.domain,
            {"lot": f"{prefix}-{i}", "quantity": 10 + i, "unit": "pcs", "goodsClass": "847130"},
            subject=f"lot:{prefix}-{i}",
            issued_at=now,
        )
        for i in range(count)
    ]


def every_kind(ledger: Ledger) -> list[dict[str, Any]]:
    """One attestation of each kind, forming one small story (in dependency order)."""
    d = ledger.domain
    out: list[dict[str, Any]] = []
    now = signing_time(ledger)

    def add(who: str, kind: Kind, fields: dict[str, Any], subject: str, refs: list[str] = ()) -> str:  # type: ignore[assignment]
        submission = build_submission(actor(who), kind, d, fields, subject=subject, refs=list(refs), issued_at=now)
        out.append(submission)
        return str(submission["uid"])

    asset = add("rights_holder", Kind.IP_ASSET, {"title": "design"}, "asset:1")
    licence = add(
        "rights_holder",
        Kind.LICENCE,
        {
            "licensee": actor("maker").address,
            "goodsClasses": ["841370"],
            "territories": ["FR"],
            "validFrom": 0,
            "validUntil": 2**40,
        },
        "licence:1",
        [asset],
    )
    made = add(
        "maker",
        Kind.PRODUCTION,
        {"lot": "S1", "quantity": 5, "unit": "pcs", "goodsClass": "841370"},
        "lot:S1",
        [licence],
    )
    moved = add(
        "maker",
        Kind.TRANSFER,
        {"lot": "S1", "quantity": 5, "unit": "pcs", "to": actor("exporter").address},
        "lot:S1",
        [made],
    )
    taken = add("exporter", Kind.TRANSFER_ACCEPTANCE, {"note": "ok"}, "lot:S1", [moved])
    shipped = add(
        "exporter",
        Kind.SHIPMENT,
        {"quantity": 5, "unit": "pcs", "goodsClass": "841370", "destination": "FR"},
        "shipment:S1",
        [taken],
    )
    add("customs", Kind.CUSTOMS_FINDING, {"finding": "CLEARED"}, "shipment:S1", [shipped])
    add("rights_holder", Kind.WATCHLIST, {"goodsClasses": ["841370"]}, "watch:1")
    add("maker", Kind.REVOCATION, {"reason": "superseded"}, "lot:S1", [moved])
    return out
