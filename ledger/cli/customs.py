"""The customs officer's commands: verify a shipment by id or from a proof bundle,
export a bundle, check a late disclosure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import (
    EXIT_INPUT,
    catch_up_printer,
    fail,
    load_document,
    load_manifest,
    open_ledger,
    print_verdict,
    run_settings,
)

PANEL = "Customs"
app = typer.Typer()


@app.command(rich_help_panel=PANEL, name="verify")
def verify_cmd(
    shipment: Annotated[str, typer.Argument(help="shipment attestation UID (0x...)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Verify a shipment recorded in this ledger (exit 0 verified, 10 flagged, 11 unverifiable)."""
    from ledger.verify.evidence import EvidenceError

    ledger = open_ledger(run_settings(), verifying=True)
    try:
        result = ledger.verify_shipment(shipment)
    except EvidenceError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    print_verdict(result, as_json)


@app.command(rich_help_panel=PANEL, name="export-bundle")
def export_bundle_cmd(
    shipment: Annotated[str, typer.Argument(help="shipment attestation UID (0x...)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="bundle file to write")] = Path("bundle.json"),
) -> None:
    """Export a shipment's self-contained proof bundle (JSON)."""
    from ledger.verify.evidence import EvidenceError

    ledger = open_ledger(run_settings())
    try:
        bundle = ledger.export_bundle(shipment)
    except EvidenceError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    out.write_text(json.dumps(bundle, indent=1))
    typer.echo(f"wrote {out} ({len(bundle['attestations'])} attestations)")


@app.command(rich_help_panel=PANEL, name="verify-bundle")
def verify_bundle_cmd(
    bundle: Annotated[Path, typer.Argument(help="proof bundle file")],
    rpc_url: Annotated[str | None, typer.Option(help="chain RPC URL (default $PROVENANCE_RPC_URL)")] = None,
    manifest: Annotated[Path | None, typer.Option(help="manifest of the trusted deployment")] = None,
    confirmations: Annotated[int | None, typer.Option(help="confirmations an anchor needs")] = None,
    mirror: Annotated[
        list[str] | None,
        typer.Option(
            help="untrusted node API URL to complete the evidence from (repeatable; checked against the chain)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Verify a proof bundle with only the chain: no database, no service needed.

    Without --mirror the verifier sees only what the bundle shows, so the completeness
    check is SKIPPED and the verdict cannot be VERIFIED. With --mirror, the public ledger
    is copied from those nodes into a temporary store, every batch checked against its
    on-chain root, and the evidence completed from it."""
    import tempfile
    from dataclasses import replace

    from ledger.verify import VerificationPolicy
    from ledger.verify.evidence import evidence_from_bundle
    from ledger.verify.service import chain_view_for, verify_bundle

    try:
        settings = run_settings()
        policy = VerificationPolicy.from_settings(settings)
        if confirmations is not None:
            policy = replace(policy, confirmations=confirmations)
        data = load_document(bundle)
        evidence_from_bundle(data)  # not a bundle at all is bad input (1), not an UNVERIFIABLE verdict
        trusted = load_manifest(settings, manifest)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read input: {exc}", EXIT_INPUT) from exc
    rpc = rpc_url or settings.resolved_rpc_url
    if not mirror:
        result = verify_bundle(data, chain_view_for(rpc, trusted, policy.confirmations), policy)
        print_verdict(result, as_json)
        return
    from ledger.core import Ledger
    from ledger.mirror import mirror as mirror_from
    from ledger.peers import HttpPeer

    with tempfile.TemporaryDirectory(prefix="provenance-mirror-") as scratch:
        local = settings.replace(
            home=Path(scratch),
            database_url=f"sqlite:///{Path(scratch) / 'mirror.db'}",
            rpc_url=rpc,
            confirmations=policy.confirmations,
            completeness_interval=0.0,
        )
        copy = Ledger.open(local, manifest=trusted)
        try:
            report = mirror_from(copy, [HttpPeer(url) for url in mirror], progress=catch_up_printer())
            for problem in report.problems:
                typer.echo(f"peer {problem.peer}, {problem.where}: {problem.what}: {problem.detail}", err=True)
            result = copy.verify_bundle(data, policy)
        finally:
            copy.close()
    print_verdict(result, as_json)


@app.command(rich_help_panel=PANEL, name="check-disclosure")
def check_disclosure_cmd(
    document: Annotated[Path, typer.Argument(help="disclosure document written by `provenance disclose`")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check disclosed fields against the commitment this node holds (exit 0 all valid,
    1 some field refused or the document is malformed)."""
    from ledger.disclosure import check_disclosure

    try:
        data = load_document(document)
        ledger = open_ledger(run_settings(), create_key=False)
        try:
            result = check_disclosure(ledger, data)
        finally:
            ledger.close()
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=1))
    else:
        typer.echo(f"{result.kind} {result.uid} by {result.attester}: anchor {result.anchor.get('status')}")
        if result.problem:
            typer.echo(f"  {result.problem}")
        for check in result.fields:
            verdict = "VALID  " if check.valid else f"REFUSED {check.reason.value if check.reason else ''}"
            typer.echo(f"  {check.name:<16} {verdict} {json.dumps(check.value) if check.valid else check.detail}")
    raise typer.Exit(0 if result.valid else EXIT_INPUT)
