"""`provenance epcis`: import an EPCIS 2.0 document as signed attestations, export custody
as EPCIS 2.0. The key stays here: the document is mapped (locally, or by the API's
`/v1/epcis/map`), signed on this machine, and stored all or nothing."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore
from ledger.config import Settings

app = typer.Typer(help="GS1 EPCIS 2.0 documents in and out.", no_args_is_help=True)


def fail(message: str) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(1)


def _context(path: Path | None) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Parties (GS1 key → {address, country}) and goods classes (GTIN → HS code), from JSON/YAML."""
    if path is None:
        return {}, {}
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    return dict(data.get("parties") or {}), dict(data.get("goodsClasses") or {})


@app.command("import")
def import_cmd(
    document: Annotated[Path, typer.Argument(help="EPCIS 2.0 JSON / JSON-LD document")],
    context: Annotated[
        Path | None, typer.Option(help="YAML/JSON: parties (GS1 key → address, country), goodsClasses")
    ] = None,
    keystore: Annotated[Path | None, typer.Option(help="encrypted keystore of the signer")] = None,
    dev_key: Annotated[int | None, typer.Option(help="well-known dev account index (dev chain only)")] = None,
    submit: Annotated[str | None, typer.Option(help="API base URL; default: the local ledger")] = None,
) -> None:
    """Map the document, sign its attestations, and store them all or nothing."""
    from ledger.epcis.importer import (
        ImportContext,
        ImportPlan,
        ImportRefused,
        Party,
        PlannedAttestation,
        plan_import,
        sign_plan,
    )
    from ledger.kinds import Kind

    try:
        doc = json.loads(document.read_text())
        if keystore is not None:
            account = load_keystore(keystore, getpass.getpass("keystore password: "))
        elif dev_key is not None:
            account = dev_account(dev_key)
        else:
            raise ValueError("give --keystore (or --dev-key on the development chain)")
        parties, goods = _context(context)
    except (OSError, ValueError, KeyLoadError) as exc:
        raise fail(str(exc)) from exc
    if submit is None:
        from ledger.core import Ledger
        from ledger.epcis.ledger_index import StoreIndex
        from ledger.epcis.service import ImportRejected, import_signed

        ledger = Ledger.open(Settings())
        try:
            ctx = ImportContext({k: Party(v["address"], v.get("country")) for k, v in parties.items()}, goods)
            plan = plan_import(doc, account.address, ctx, StoreIndex(ledger.sessions))
            stored = import_signed(ledger, sign_plan(plan, account, ledger.domain))
        except (ImportRefused, ImportRejected) as exc:
            raise fail(f"nothing stored: {exc}") from exc
        finally:
            ledger.close()
        created = sum(a.created for a in stored)
        typer.echo(f"stored {created} attestations; {len(plan.already_recorded)} events already recorded")
        return
    import httpx

    from ledger.chain.manifest import Manifest
    from ledger.eip712 import Domain

    base = submit.rstrip("/")
    answer = httpx.post(
        f"{base}/v1/epcis/map",
        json={"document": doc, "signer": account.address, "parties": parties, "goodsClasses": goods},
        timeout=60,
    )
    if answer.status_code != 200:
        raise fail(f"not mapped: {answer.json().get('detail')}")
    body: dict[str, Any] = answer.json()
    plan = ImportPlan(
        body["signer"],
        [
            PlannedAttestation(
                a["eventKey"], a["rule"], Kind.from_type_name(a["kind"]), a["subject"], a["fields"], a["refs"]
            )
            for a in body["attestations"]
        ],
        body["alreadyRecorded"],
    )
    manifest = Manifest.load(Settings().resolved_manifest_path)
    submissions = sign_plan(plan, account, Domain(manifest.chain_id, manifest.ledger))
    answer = httpx.post(f"{base}/v1/epcis/import", json=submissions, timeout=60)
    if answer.status_code != 201:
        raise fail(f"nothing stored: {answer.json().get('detail')}")
    typer.echo(f"stored {answer.json()['created']} attestations; {len(plan.already_recorded)} events already recorded")


@app.command("export")
def export_cmd(
    lot: Annotated[str | None, typer.Option(help="lot (a GS1 key in any spelling, or a lot id)")] = None,
    shipment: Annotated[str | None, typer.Option(help="shipment UID")] = None,
    out: Annotated[Path | None, typer.Option(help="write the document here (default: stdout)")] = None,
) -> None:
    """Export a lot's or a shipment's custody history from the local ledger as EPCIS 2.0."""
    from ledger.core import Ledger
    from ledger.epcis.service import export_lot, export_shipment

    if (lot is None) == (shipment is None):
        raise fail("give exactly one of --lot or --shipment")
    ledger = Ledger.open(Settings())
    try:
        doc = export_lot(ledger, lot) if lot is not None else export_shipment(ledger, str(shipment))
    finally:
        ledger.close()
    text = json.dumps(doc, indent=1)
    if out is not None:
        out.write_text(text)
    else:
        typer.echo(text)
