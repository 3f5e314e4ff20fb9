"""Entry point of the `provenance` command.

Exit codes scripts can rely on: 0 success (or VERIFIED), 1 a usage or input error, 2 the
chain or database was unreachable, 3 a contract rejected the request, 10 FLAGGED,
11 UNVERIFIABLE.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore, require_dev_chain
from ledger.chain.anvil import AnvilError, start_anvil
from ledger.chain.client import ChainRevert, ChainUnavailable, Deployment, connect
from ledger.chain.deploy import deploy
from ledger.chain.manifest import Manifest
from ledger.config import Settings

EXIT_INPUT = 1
EXIT_UNAVAILABLE = 2
EXIT_REVERT = 3
EXIT_FLAGGED = 10
EXIT_UNVERIFIABLE = 11
VERDICT_EXIT = {"VERIFIED": 0, "FLAGGED": EXIT_FLAGGED, "UNVERIFIABLE": EXIT_UNVERIFIABLE}

app = typer.Typer(help="provenance-ledger: signed provenance attestations anchored on chain.", no_args_is_help=True)
chain_app = typer.Typer(help="The local development chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _manifest_is_live(settings: Settings, rpc_url: str) -> Manifest | None:
    path = settings.resolved_manifest_path
    if not path.exists():
        return None
    manifest = Manifest.load(path)
    try:
        Deployment(connect(rpc_url), manifest).check_chain()
    except ChainUnavailable:
        return None
    return manifest


def ensure_deployed(settings: Settings, rpc_url: str) -> Manifest:
    """The manifest of a live deployment on `rpc_url`, deploying with the dev keys if none."""
    manifest = _manifest_is_live(settings, rpc_url)
    if manifest is not None:
        return manifest
    w3 = connect(rpc_url)
    require_dev_chain(w3.eth.chain_id)
    manifest = deploy(w3, dev_account(0), dev_account(1).address)
    manifest.save(settings.resolved_manifest_path)
    return manifest


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="anvil port (default $PROVENANCE_ANVIL_PORT or 8545)")] = None,
    block_time: Annotated[float, typer.Option(help="seconds between blocks on the dev chain")] = 1.0,
    exit_after_deploy: Annotated[bool, typer.Option(help="stop once deployed (for scripts)")] = False,
) -> None:
    """Start the embedded system: local chain (state kept in $PROVENANCE_HOME), contracts
    deployed once, manifest printed. Runs until interrupted."""
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        node = start_anvil(
            port=port or settings.anvil_port,
            state_file=settings.chain_state_file,
            block_time=block_time,
            log_file=settings.home / "chain" / "anvil.log",
        )
    except AnvilError as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from exc
    try:
        manifest = ensure_deployed(settings, node.rpc_url)
        typer.echo(f"chain      {node.rpc_url} (chain id {manifest.chain_id}, state {settings.chain_state_file})")
        typer.echo(f"registry   {manifest.registry}")
        typer.echo(f"ledger     {manifest.ledger}")
        typer.echo(f"manifest   {settings.resolved_manifest_path}")
        typer.echo(manifest.to_json(), nl=False)
        typer.echo("ready", err=True)
        sys.stdout.flush()
        if exit_after_deploy:
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.is_set() and node.process.poll() is None:
            stop.wait(0.5)
        if node.process.poll() is not None:
            raise _fail(f"anvil exited with code {node.process.returncode}", EXIT_UNAVAILABLE)
    finally:
        node.stop()
        typer.echo("stopped", err=True)


@chain_app.command("start")
def chain_start(
    port: Annotated[int | None, typer.Option(help="port (default $PROVENANCE_ANVIL_PORT or 8545)")] = None,
    state: Annotated[Path | None, typer.Option(help="state file kept between runs")] = None,
    block_time: Annotated[float | None, typer.Option(help="seconds between blocks (default: per tx)")] = None,
) -> None:
    """Run a local anvil node in the foreground until interrupted."""
    settings = Settings()
    try:
        node = start_anvil(
            port=port or settings.anvil_port, state_file=state or settings.chain_state_file, block_time=block_time
        )
    except AnvilError as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from exc
    typer.echo(f"anvil on {node.rpc_url} (chain id {node.chain_id})")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.is_set() and node.process.poll() is None:
            stop.wait(0.5)
    finally:
        node.stop()


@app.command("deploy")
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
    settings = Settings()
    url = rpc_url or settings.resolved_rpc_url
    try:
        w3 = connect(url)
        if registrar_keystore is not None:
            registrar = load_keystore(registrar_keystore)
        else:
            require_dev_chain(w3.eth.chain_id)
            registrar = dev_account(0)
        anchorer_address = anchorer or (registrar.address if registrar_keystore else dev_account(1).address)
        manifest = deploy(w3, registrar, anchorer_address)
    except ChainUnavailable as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from exc
    except KeyLoadError as exc:
        raise _fail(str(exc), EXIT_INPUT) from exc
    except ChainRevert as exc:
        raise _fail(f"contract rejected the deployment: {exc}", EXIT_REVERT) from exc
    path = manifest.save(out or settings.resolved_manifest_path)
    if as_json:
        typer.echo(manifest.to_json(), nl=False)
    else:
        typer.echo(f"deployed on chain {manifest.chain_id}: registry {manifest.registry}, ledger {manifest.ledger}")
        typer.echo(f"manifest written to {path}")


@app.command("worker")
def worker_cmd(
    once: Annotated[bool, typer.Option(help="one step, then exit")] = False,
    interval: Annotated[float, typer.Option(help="seconds between steps")] = 0.5,
) -> None:
    """Run the anchoring worker (one leader at a time, elected through the database)."""
    from ledger.core import Ledger

    settings = Settings()
    ledger = Ledger.open(settings)
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


def _print_verdict(result: object, as_json: bool) -> None:
    from ledger.verify import VerificationResult

    assert isinstance(result, VerificationResult)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        colour = {"VERIFIED": typer.colors.GREEN, "FLAGGED": typer.colors.YELLOW}.get(
            result.verdict.value, typer.colors.RED
        )
        typer.secho(
            f"{result.verdict.value}  risk {result.risk_score}/100  shipment {result.shipment}", fg=colour, bold=True
        )
        for check in result.checks:
            typer.echo(f"  {check.name:<15} {check.status.value:<8} {check.detail}")
            for finding in check.findings:
                typer.echo(f"      {finding.code.value}: {finding.message}")
        for factor in result.risk_factors:
            typer.echo(f"  risk +{factor.points:<3} {factor.name}: {factor.why}")
    raise typer.Exit(VERDICT_EXIT[result.verdict.value])


@app.command("verify")
def verify_cmd(
    shipment: Annotated[str, typer.Argument(help="shipment attestation UID (0x...)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Verify a shipment recorded in this ledger (exit 0 verified, 10 flagged, 11 unverifiable)."""
    from ledger.core import Ledger
    from ledger.verify.evidence import EvidenceError

    ledger = Ledger.open(Settings())
    try:
        result = ledger.verify_shipment(shipment)
    except EvidenceError as exc:
        raise _fail(str(exc), EXIT_INPUT) from exc
    _print_verdict(result, as_json)


@app.command("export-bundle")
def export_bundle_cmd(
    shipment: Annotated[str, typer.Argument(help="shipment attestation UID (0x...)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="bundle file to write")] = Path("bundle.json"),
) -> None:
    """Export a shipment's self-contained proof bundle (JSON)."""
    from ledger.core import Ledger
    from ledger.verify.evidence import EvidenceError

    ledger = Ledger.open(Settings())
    try:
        bundle = ledger.export_bundle(shipment)
    except EvidenceError as exc:
        raise _fail(str(exc), EXIT_INPUT) from exc
    out.write_text(json.dumps(bundle, indent=1))
    typer.echo(f"wrote {out} ({len(bundle['attestations'])} attestations)")


@app.command("verify-bundle")
def verify_bundle_cmd(
    bundle: Annotated[Path, typer.Argument(help="proof bundle file")],
    rpc_url: Annotated[str | None, typer.Option(help="chain RPC URL (default $PROVENANCE_RPC_URL)")] = None,
    manifest: Annotated[Path | None, typer.Option(help="manifest of the trusted deployment")] = None,
    confirmations: Annotated[int | None, typer.Option(help="confirmations an anchor needs")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Verify a proof bundle with only the chain: no database, no service needed."""
    from ledger.verify import VerificationPolicy
    from ledger.verify.service import verify_bundle

    settings = Settings()
    try:
        data = json.loads(bundle.read_text())
        trusted = Manifest.load(manifest or settings.resolved_manifest_path)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read input: {exc}", EXIT_INPUT) from exc
    policy = VerificationPolicy.from_env()
    if confirmations is not None:
        policy = VerificationPolicy(confirmations, policy.require_acceptance, policy.mandatory)
    result = verify_bundle(data, rpc_url or settings.resolved_rpc_url, trusted, policy)
    _print_verdict(result, as_json)


@app.command("manifest")
def show_manifest(path: Annotated[Path | None, typer.Argument(help="manifest file")] = None) -> None:
    """Print the deployment manifest."""
    settings = Settings()
    try:
        manifest = Manifest.load(path or settings.resolved_manifest_path)
    except FileNotFoundError as exc:
        raise _fail(str(exc), EXIT_INPUT) from exc
    typer.echo(json.dumps(json.loads(manifest.to_json()), indent=2))


def main() -> None:
    """Console-script entry point."""
    app()
