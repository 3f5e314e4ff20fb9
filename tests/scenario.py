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


class Story:
    """A provenance story told through the public core: each step signs and ingests one
    attestation (times strictly increasing) and returns its UID."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.t = signing_time(ledger)  # later steps count up from here, within the allowed clock skew

    def sign(
        self,
        who: str,
        kind: Kind,
        fields: dict[str, Any],
        subject: str,
        refs: list[str] | tuple[str, ...] = (),
        *,
        at: int | None = None,
        ingest: bool = True,
        **kw: Any,
    ) -> str:
        self.t += 1
        submission = build_submission(
            actor(who),
            kind,
            self.ledger.domain,
            fields,
            subject=subject,
            refs=list(refs),
            issued_at=self.t if at is None else at,
            **kw,
        )
        if ingest:
            self.ledger.ingest(submission)
        self.last = submission
        return str(submission["uid"])

    def asset(self, who: str = "rights_holder") -> str:
        return self.sign(who, Kind.IP_ASSET, {"title": "impeller design"}, "asset:impeller")

    def licence(self, assets: list[str], licensee: str = "maker", who: str = "rights_holder", **terms: Any) -> str:
        fields = {
            "licensee": actor(licensee).address,
            "goodsClasses": ["8413"],
            "territories": ["FR", "DE"],
            "validFrom": 0,
            "validUntil": 2**40,
            "quantityCap": 10_000,
            "sublicensing": False,
        }
        fields.update(terms)
        return self.sign(who, Kind.LICENCE, fields, "licence", assets)

    def produce(
        self, licences: list[str], quantity: int = 1000, who: str = "maker", lot: str = "LOT-1", goods: str = "841370"
    ) -> str:
        return self.sign(
            who,
            Kind.PRODUCTION,
            {"lot": lot, "quantity": quantity, "unit": "pcs", "goodsClass": goods},
            f"lot:{lot}",
            licences,
        )

    def transfer(self, inputs: list[str], who: str, to: str, quantity: int, lot: str = "LOT-1", **kw: Any) -> str:
        return self.sign(
            who,
            Kind.TRANSFER,
            {"lot": lot, "quantity": quantity, "unit": "pcs", "to": actor(to).address},
            f"lot:{lot}",
            inputs,
            **kw,
        )

    def accept(self, transfer: str, who: str) -> str:
        return self.sign(who, Kind.TRANSFER_ACCEPTANCE, {"note": "received"}, "lot", [transfer])

    def ship(
        self,
        inputs: list[str],
        quantity: int,
        destination: str = "FR",
        who: str = "exporter",
        goods: str = "841370",
        **kw: Any,
    ) -> str:
        return self.sign(
            who,
            Kind.SHIPMENT,
            {"quantity": quantity, "unit": "pcs", "goodsClass": goods, "destination": destination},
            "shipment",
            inputs,
            **kw,
        )

    def revoke(self, uid: str, who: str) -> str:
        return self.sign(who, Kind.REVOCATION, {"reason": "withdrawn"}, "revocation", [uid])

    def watch(self, goods: list[str], who: str = "rights_holder") -> str:
        return self.sign(who, Kind.WATCHLIST, {"goodsClasses": goods}, "watch")

    def finding(self, uid: str, code: str) -> str:
        return self.sign("customs", Kind.CUSTOMS_FINDING, {"finding": code}, "finding", [uid])

    def clean_export(self) -> dict[str, str]:
        """Production under licence, a hand-over to a carrier, a split, export of 600 to FR."""
        ids: dict[str, str] = {}
        ids["asset"] = self.asset()
        ids["licence"] = self.licence([ids["asset"]])
        ids["watch"] = self.watch(["8413"])
        ids["made"] = self.produce([ids["licence"]])
        ids["to_carrier"] = self.transfer([ids["made"]], "maker", "carrier", 1000)
        ids["carrier_ok"] = self.accept(ids["to_carrier"], "carrier")
        ids["to_exporter"] = self.transfer([ids["to_carrier"]], "carrier", "exporter", 600)
        ids["to_importer"] = self.transfer([ids["to_carrier"]], "carrier", "importer", 400)
        ids["exporter_ok"] = self.accept(ids["to_exporter"], "exporter")
        ids["shipment"] = self.ship([ids["to_exporter"]], 600)
        return ids

    def anchor(self, confirmations: int = 1) -> None:
        w3 = self.ledger.deployment.w3
        worker = self.ledger.anchoring_worker(confirmations=confirmations, max_age=0.0)
        worker.drain(mine=lambda: w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
        for _ in range(3):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
