"""The node operator's commands: the development chain, deployment, the anchoring
worker, mirroring from peers, API keys, migrations, the demo and the manifest."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore, require_dev_chain
from ledger.chain.anvil import AnvilError, start_anvil
from ledger.chain.client import ChainRevert, ChainUnavailable, connect
from ledger.chain.deploy import deploy
from ledger.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_INPUT,
    EXIT_REVERT,
    EXIT_UNAVAILABLE,
    catch_up_printer,
    fail,
    load_manifest,
    open_ledger,
    progress_printer,
    run_settings,
)

PANEL = "Node operator"
app = typer.Typer()
chain_app = typer.Typer(help="The local development chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain", rich_help_panel=PANEL)


@chain_app.command("start")
def chain_start(
    port: Annotated[int | None, typer.Option(help="port (default $PROVENANCE_ANVIL_PORT or 8545)")] = None,
    state: Annotated[Path | None, typer.Option(help="state file kept between runs")] = None,
    block_time: Annotated[float | None, typer.Option(help="seconds between blocks (default: per tx)")] = None,
) -> None:
    """Run a local anvil node in the foreground until interrupted."""
    settings = run_settings()
    try:
        node = start_anvil(
            port=port or settings.anvil_port,
            state_file=state or settings.chain_state_file,
            block_time=block_time,
            binary_path=settings.anvil_bin,
        )
    except AnvilError as exc:
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    typer.echo(f"anvil on {node.rpc_url} (chain id {node.chain_id})")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.is_set() and node.process.poll() is None:
            stop.wait(0.5)
    finally:
        node.stop()


@app.command(rich_help_panel=PANEL, name="deploy")
def deploy_cmd(
    rpc_url: Annotated[
        str | None, typer.Option(help="RPC URL (default $PROVENANCE_RPC_URL or the local chain)")
    ] = None,
    registrar_keystore: Annotated[Path | None, typer.Option(help="keystore of the registrar/deployer")] = None,
    anchorer: Annotated[str | None, typer.Option(help="address granted the anchorer role")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write the manifest")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the manifest JSON")] = False,
) -> None:
    """Deploy registry and ledger to an RPC URL, grant initial roles, write the manifest.

    Without --registrar-keystore the well-known development keys are used, which is
    refused on any chain but the local development chain."""
    settings = run_settings()
    url = rpc_url or settings.resolved_rpc_url
    try:
        w3 = connect(url)
        if registrar_keystore is not None:
            registrar = load_keystore(registrar_keystore, settings.key_password)
        else:
            require_dev_chain(w3)
            registrar = dev_account(0)
        anchorer_address = anchorer or (registrar.address if registrar_keystore else dev_account(1).address)
        manifest = deploy(w3, registrar, anchorer_address)
    except ChainUnavailable as exc:
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    except KeyLoadError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    except ChainRevert as exc:
        raise fail(f"contract rejected the deployment: {exc}", EXIT_REVERT) from exc
    path = manifest.save(out or settings.resolved_manifest_path)
    if as_json:
        typer.echo(manifest.to_json(), nl=False)
    else:
        typer.echo(f"deployed on chain {manifest.chain_id}: registry {manifest.registry}, ledger {manifest.ledger}")
        typer.echo(f"manifest written to {path}")


@app.command(rich_help_panel=PANEL, name="worker")
def worker_cmd(
    once: Annotated[bool, typer.Option(help="one step, then exit")] = False,
    interval: Annotated[float, typer.Option(help="seconds between steps")] = 0.5,
) -> None:
    """Run the anchoring worker (one leader at a time, elected through the database)."""

    settings = run_settings()
    ledger = open_ledger(settings)
    worker = ledger.anchoring_worker()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if once:
        report = worker.step()
        typer.echo(json.dumps(report.__dict__))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    typer.echo(f"anchoring worker {worker.holder} started", err=True)
    worker.run(stop, interval=interval)


@app.command(rich_help_panel=PANEL, name="mirror")
def mirror_cmd(
    peer: Annotated[
        list[str] | None, typer.Option(help="peer node API URL (repeatable; default $PROVENANCE_PEERS)")
    ] = None,
    archive: Annotated[
        list[Path] | None,
        typer.Option(help="archive file another node wrote with `provenance archive` (repeatable; asked first)"),
    ] = None,
    follow: Annotated[bool, typer.Option(help="keep mirroring new batches until stopped")] = False,
    jobs: Annotated[
        int, typer.Option(help="processes fetching and checking batches ahead (default: one per core)", min=1)
    ] = os.cpu_count() or 1,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Copy the public ledger from untrusted peers or archive files into this node's
    store, checking every batch against its on-chain root (exit 0 complete, 4 gaps remain)."""
    from ledger.mirror import follow as follow_peers
    from ledger.mirror import mirror as mirror_from
    from ledger.peers import ArchivePeer, HttpPeer, Peer, PeerUnavailable

    settings = run_settings()
    urls = peer or ([] if archive else list(settings.peers))
    if not urls and not archive:
        raise fail("no peers: give --peer URL or --archive FILE, or set PROVENANCE_PEERS", EXIT_INPUT)
    peers: list[Peer] = []
    for path in archive or []:
        try:
            peers.append(ArchivePeer(path))
        except PeerUnavailable as exc:
            raise fail(str(exc), EXIT_INPUT) from exc
    peers += [HttpPeer(url) for url in urls]
    ledger = open_ledger(settings)
    try:
        if follow:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            follow_peers(ledger, peers, stop)
            return
        report = mirror_from(ledger, peers, progress=None if as_json else catch_up_printer(), jobs=jobs)
        watermark = ledger.completeness.watermark(ledger.chain_view.snapshot(max_age=0))
    finally:
        ledger.close()
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "completeness": watermark.to_json()}, indent=2))
    else:
        for problem in report.problems:
            typer.echo(f"peer {problem.peer}, {problem.where}: {problem.what}: {problem.detail}", err=True)
        typer.echo(f"stored {report.records_stored} records in {report.batches_stored} batches; {watermark.describe()}")
    raise typer.Exit(0 if report.complete else EXIT_DISCREPANCY)


@app.command(rich_help_panel=PANEL, name="archive")
def archive_cmd(
    path: Annotated[Path, typer.Argument(help="the archive file to write (replaced once complete)")],
) -> None:
    """Write this node's public ledger — every anchored batch it holds, public fields only —
    to one file a new node can mirror from (`provenance mirror --archive FILE`), checking
    it against the chain as it would a peer's answers."""
    from ledger.peers import write_archive

    ledger = open_ledger(run_settings())
    try:
        batches, direct = write_archive(ledger, path, progress=progress_printer("archiving"))
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_INPUT) from exc
    finally:
        ledger.close()
    typer.echo(f"wrote {batches} batches and {direct} directly recorded attestations to {path}")


apikey_app = typer.Typer(help="Scoped API keys for customs, auditors and admins.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey", rich_help_panel=PANEL)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="who holds it (e.g. 'FR customs, Le Havre lane 3')")],
    scopes: Annotated[str, typer.Option(help="comma-separated: customs, auditor, admin")],
) -> None:
    """Create a key; the token is printed once and never stored."""
    from ledger.access import create_api_key

    ledger = open_ledger(run_settings())
    try:
        key, token = create_api_key(ledger.sessions, name, {s.strip() for s in scopes.split(",") if s.strip()})
    except ValueError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    typer.echo(f"key {key.id} ({', '.join(sorted(key.scopes))}) for {name}")
    typer.echo(token)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="key id")]) -> None:
    """Revoke a key at once."""
    from ledger.access import revoke_api_key

    if not revoke_api_key(open_ledger(run_settings()).sessions, key_id):
        raise fail(f"no live key {key_id}", EXIT_INPUT)
    typer.echo(f"revoked {key_id}")


@apikey_app.command("list")
def apikey_list() -> None:
    """List keys (ids, names, scopes; never secrets)."""
    from ledger.access import list_api_keys

    for key in list_api_keys(open_ledger(run_settings()).sessions):
        typer.echo(f"{key['id']}  {key['scopes']:<24} {'REVOKED ' if key['revoked'] else ''}{key['name']}")


@app.command(rich_help_panel=PANEL, name="migrate")
def migrate_cmd() -> None:
    """Bring the database schema to the latest version."""
    from ledger.store.db import make_engine, migrate

    settings = run_settings()
    migrate(make_engine(settings.resolved_database_url))
    typer.echo(f"migrated {settings.resolved_database_url.split('@')[-1]}")


@app.command(rich_help_panel=PANEL, name="demo")
def demo_cmd() -> None:
    """Seed the demo story into the configured ledger (development chain only)."""
    from ledger.demo import seed_demo

    ids = seed_demo(open_ledger(run_settings()))
    typer.echo(f"clean shipment   {ids['shipment']}\nflagged shipment {ids['flagged_shipment']}")


@app.command(rich_help_panel=PANEL, name="manifest")
def show_manifest(path: Annotated[Path | None, typer.Argument(help="manifest file")] = None) -> None:
    """Print the deployment manifest."""
    settings = run_settings()
    try:
        manifest = load_manifest(settings, path)
    except FileNotFoundError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    typer.echo(json.dumps(json.loads(manifest.to_json()), indent=2))
