"""`provenance epcis`: import an EPCIS 2.0 document as signed attestations, export custody
as EPCIS 2.0. The key stays here: the document is mapped (locally, or by the API's
`/v1/epcis/map`), signed on this machine, and stored all or nothing.

Exit codes (as every `provenance` command): 0 done (also when every event was already
recorded), 1 bad input or a refused document (nothing stored; one line per problem,
naming the file, line and column or the event), 2 the chain, database or API cannot be
reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.chain.accounts import KeyLoadError
from ledger.cli.common import (
    EXIT_UNAVAILABLE,
    fail,
    load_document,
    load_manifest,
    run_settings,
    signing_account,
)

app = typer.Typer(help="GS1 EPCIS 2.0 documents in and out.", no_args_is_help=True)


def _context(path: Path | None) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Parties (GS1 key → {address, country}) and goods classes (GTIN → HS code), from JSON/YAML."""

    if path is None:
        return {}, {}
    data = load_document(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object with parties and goodsClasses")
    parties, goods = data.get("parties") or {}, data.get("goodsClasses") or {}
    if not isinstance(parties, dict) or not all(isinstance(v, dict) and "address" in v for v in parties.values()):
        raise ValueError(f"{path}: parties must map each GS1 party key to {{address, country}}")
    if not isinstance(goods, dict):
        raise ValueError(f"{path}: goodsClasses must map each GTIN to an HS code")
    return dict(parties), {str(k): str(v) for k, v in goods.items()}


def _refused(problems: list[tuple[str, str]]) -> typer.Exit:
    """Nothing stored: one line per refused event (its key and reason)."""
    for key, reason in problems:
        typer.secho(f"error: {key}: {reason}", fg="red", err=True)
    return fail(f"nothing stored: {len(problems)} problem(s) above")


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
    """Map the document, sign its attestations, and store them all or nothing. Importing
    the same document again stores nothing new."""
    from ledger.chain.client import ChainUnavailable
    from ledger.epcis.importer import ImportContext, ImportRefused, Party, plan_import, sign_plan

    settings = run_settings()
    try:
        doc = load_document(document)
        parties, goods = _context(context)
        ctx = ImportContext({k: Party(v["address"], v.get("country")) for k, v in parties.items()}, goods)
    except (OSError, ValueError) as exc:  # GS1KeyError is a ValueError
        raise fail(str(exc)) from exc
    manifest = load_manifest(settings)  # missing: one line saying where it looked, exit 1
    try:
        account = signing_account(settings, manifest, keystore, dev_key)
    except ChainUnavailable as exc:  # a dev key needs the dev chain to prove it is one
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    except (OSError, ValueError, KeyLoadError) as exc:
        raise fail(str(exc)) from exc
    if submit is not None:
        _import_over_http(submit.rstrip("/"), doc, account, parties, goods, manifest)
        return
    from ledger.core import Ledger
    from ledger.epcis.ledger_index import StoreIndex
    from ledger.epcis.service import ImportRejected, import_signed

    try:
        ledger = Ledger.open(settings, manifest=manifest)
    except ChainUnavailable as exc:
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    try:
        plan = plan_import(doc, account.address, ctx, StoreIndex(ledger.sessions))
        stored = import_signed(ledger, sign_plan(plan, account, ledger.domain))
    except ImportRefused as exc:
        raise _refused(exc.problems) from exc
    except ImportRejected as exc:
        raise fail(f"nothing stored: {exc}") from exc
    finally:
        ledger.close()
    created = sum(a.created for a in stored)
    typer.echo(f"stored {created} attestations; {len(plan.already_recorded)} events already recorded")


def _import_over_http(
    base: str, doc: Any, account: Any, parties: dict[str, Any], goods: dict[str, str], manifest: Any
) -> None:
    import httpx

    from ledger.eip712 import Domain
    from ledger.epcis.importer import ImportPlan, sign_plan

    try:
        answer = httpx.post(
            f"{base}/v1/epcis/map",
            json={"document": doc, "signer": account.address, "parties": parties, "goodsClasses": goods},
            timeout=60,
        )
        if answer.status_code != 200:
            raise fail(f"not mapped: {_detail(answer)}")
        body: dict[str, Any] = answer.json()
        plan = ImportPlan.from_json(body)
        submissions = sign_plan(plan, account, Domain(manifest.chain_id, manifest.ledger))
        answer = httpx.post(f"{base}/v1/epcis/import", json=submissions, timeout=60)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {base}: {exc}", EXIT_UNAVAILABLE) from exc
    if answer.status_code != 201:
        raise fail(f"nothing stored: {_detail(answer)}")
    typer.echo(f"stored {answer.json()['created']} attestations; {len(plan.already_recorded)} events already recorded")


def _detail(answer: Any) -> str:
    try:
        return str(answer.json().get("detail"))
    except ValueError:
        return f"HTTP {answer.status_code}"


@app.command("export")
def export_cmd(
    lot: Annotated[str | None, typer.Option(help="lot (a GS1 key in any spelling, or a lot id)")] = None,
    shipment: Annotated[str | None, typer.Option(help="shipment UID")] = None,
    out: Annotated[Path | None, typer.Option(help="write the document here (default: stdout)")] = None,
) -> None:
    """Export a lot's or a shipment's custody history from the local ledger as EPCIS 2.0:
    every event, imported from EPCIS or recorded natively, with its attestations' UIDs and
    anchoring."""
    import json
    import re

    from ledger.chain.client import ChainUnavailable
    from ledger.core import Ledger
    from ledger.epcis.service import export_lot, export_shipment

    if (lot is None) == (shipment is None):
        raise fail("give exactly one of --lot or --shipment")
    if shipment is not None and not re.fullmatch(r"0x[0-9a-fA-F]{64}", shipment):
        raise fail(f"{shipment!r} is not a shipment UID: expected 0x followed by 64 hex digits")
    settings = run_settings()
    manifest = load_manifest(settings)
    try:
        ledger = Ledger.open(settings, manifest=manifest)
    except ChainUnavailable as exc:
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    try:
        doc = export_lot(ledger, lot) if lot is not None else export_shipment(ledger, str(shipment))
    finally:
        ledger.close()
    if not doc["epcisBody"]["eventList"]:
        raise fail(f"nothing recorded on this ledger for {lot or shipment}")
    text = json.dumps(doc, indent=1)
    if out is not None:
        out.write_text(text)
    else:
        typer.echo(text)
