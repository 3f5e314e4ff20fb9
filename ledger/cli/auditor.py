"""The auditor's commands: replay the history from the chain and export an archive."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import (
    EXIT_INPUT,
    EXIT_UNAVAILABLE,
    fail,
    load_manifest,
    open_ledger,
    run_settings,
)

PANEL = "Auditor"
app = typer.Typer()
audit_app = typer.Typer(help="Auditor tools: replay the whole history from the chain.", no_args_is_help=True)
app.add_typer(audit_app, name="audit", rich_help_panel=PANEL)


@audit_app.command("replay")
def audit_replay(
    archive: Annotated[Path | None, typer.Option(help="replay an exported archive instead of the database")] = None,
    manifest: Annotated[Path | None, typer.Option(help="deployment manifest")] = None,
    rpc_url: Annotated[str | None, typer.Option(help="chain RPC URL (default $PROVENANCE_RPC_URL)")] = None,
    json_out: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    html_out: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    unanchored_limit: Annotated[float, typer.Option(help="seconds a record may wait to be anchored")] = 3600.0,
    registry_lag: Annotated[
        float, typer.Option(help="seconds the store's copy of the registry may lag behind a change on chain")
    ] = 600.0,
    progress: Annotated[bool, typer.Option(help="force the progress bar even when not a terminal")] = False,
    checkpoint: Annotated[Path | None, typer.Option(help="resume from / save to this checkpoint file")] = None,
    follow: Annotated[bool, typer.Option(help="keep following new blocks until interrupted")] = False,
    follow_interval: Annotated[float, typer.Option(help="seconds between rounds with --follow")] = 10.0,
    jobs: Annotated[
        int, typer.Option(help="processes checking records in parallel (default: one per core)", min=1)
    ] = os.cpu_count() or 1,
) -> None:
    """Rebuild history from the chain and re-verify every record. Exit 0 only when there
    are no discrepancies (4 otherwise). With --checkpoint, a later run reads only new
    blocks and checks only batches not yet checked; --follow repeats that until stopped."""
    from ledger import audit

    settings = run_settings()
    trusted = load_manifest(settings, manifest)
    deployment = audit.replay_deployment(trusted, rpc_url or settings.resolved_rpc_url)
    try:
        state = audit.ReplayState.load(checkpoint) if checkpoint is not None and checkpoint.exists() else None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise fail(f"the checkpoint {checkpoint} cannot be resumed from: {exc}", EXIT_INPUT) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    clean = True
    while True:
        store_registry = store_batches = None
        total = 0
        if archive is not None:
            data = audit.archive_source(archive)
        else:
            from ledger.core import Ledger

            ledger = Ledger.open(settings, manifest=trusted, create_key=False)
            facts = audit.store_facts(ledger)
            total, store_batches = facts.total, facts.batch_roots
            store_registry = ledger.sessions
            data = audit.store_source(ledger)
        try:
            report, state = audit.replay(
                deployment,
                data,
                state=state,
                expected_total=total,
                unanchored_limit=unanchored_limit,
                registry_lag=registry_lag,
                registry_confirmations=settings.confirmations,
                store_registry=store_registry,
                store_batches=store_batches,
                progress=audit.Progress(total, "replay", force=progress),
                jobs=jobs,
            )
        except Exception as exc:
            raise fail(f"replay failed: {exc}", EXIT_UNAVAILABLE) from exc
        if checkpoint is not None:
            state.save(checkpoint)
        result = report.to_json()
        if json_out:
            json_out.write_text(json.dumps(result, indent=1))
        if html_out:
            html_out.write_text(audit.html_report(report))
        summary = result["summary"]
        typer.echo(
            f"blocks {report.from_block}-{report.to_block}: {summary['attestations']} attestations checked "
            f"({summary['skippedAlreadyChecked']} already checked), {summary['batches']} batches, "
            f"{summary['revoked']} revoked, {summary['discrepancies']} discrepancies "
            f"({summary['ratePerSecond']}/s)"
        )
        if report.store_registry is not None:
            indexed = report.store_registry["indexedThroughBlock"]
            typer.echo(
                "  the store's copy of the registry: never indexed"
                if indexed is None
                else f"  the store's copy of the registry: indexed through block {indexed}, "
                f"compared with the chain through block {min(indexed, report.to_block)}"
            )
        for d in report.discrepancies:
            typer.secho(f"  {d.kind}: {d.message} {' '.join(d.uids[:3])}", fg=typer.colors.RED)
        clean = clean and report.clean
        if not follow or stop.wait(follow_interval):
            break
    raise typer.Exit(0 if clean else 4)


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option(help="archive file (.jsonl.gz)")]) -> None:
    """Export the ledger data (no confidential plaintext) for a replay without the database."""
    from ledger import audit

    count = audit.export_archive(open_ledger(run_settings(), create_key=False), out)
    typer.echo(f"wrote {count} attestations to {out}")
