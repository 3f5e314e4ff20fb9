"""Entry point of the `provenance` command.

Exit codes scripts can rely on: 0 success (or VERIFIED), 1 a usage or input error, 2 the
chain or database was unreachable, 3 a contract rejected the request, 10 FLAGGED,
11 UNVERIFIABLE.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore, require_dev_chain
from ledger.chain.anvil import AnvilError, start_anvil
from ledger.chain.client import ChainRevert, ChainUnavailable, Deployment, connect
from ledger.chain.deploy import deploy
from ledger.chain.manifest import Manifest
from ledger.config import Settings, settings_or_exit

EXIT_INPUT = 1
EXIT_UNAVAILABLE = 2
EXIT_REVERT = 3
EXIT_DISCREPANCY = 4  # replay found discrepancies; mirroring left gaps
EXIT_FLAGGED = 10
EXIT_UNVERIFIABLE = 11
VERDICT_EXIT = {"VERIFIED": 0, "FLAGGED": EXIT_FLAGGED, "UNVERIFIABLE": EXIT_UNVERIFIABLE}

app = typer.Typer(help="provenance-ledger: signed provenance attestations anchored on chain.", no_args_is_help=True)
chain_app = typer.Typer(help="The local development chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def load_manifest(settings: Settings, path: Path | None = None) -> Manifest:
    """The deployment manifest at `path` (else the settings' one); a missing one exits 1
    saying where it looked and what to set, never with a traceback."""
    where = (path or settings.resolved_manifest_path).resolve()
    try:
        return Manifest.load(where)
    except FileNotFoundError:
        how = (
            "--manifest"
            if path is not None
            else ("PROVENANCE_MANIFEST" if settings.manifest_path else f"PROVENANCE_HOME={settings.home}")
        )
        raise fail(
            f"no deployment manifest at {where} (from {how}); run where the deployment's var/ folder is, "
            "or set PROVENANCE_HOME to its state directory or PROVENANCE_MANIFEST to its deployment.json "
            "(`provenance deploy` or `provenance up` writes one)",
            EXIT_INPUT,
        ) from None


def open_ledger(settings: Settings, **options: Any) -> Any:
    """This node's `Ledger` (database and chain of the settings), or exit 1 naming what
    is missing."""
    from ledger.core import Ledger

    manifest = options.pop("manifest", None) or load_manifest(settings)
    return Ledger.open(settings, manifest=manifest, **options)


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
    require_dev_chain(w3)
    manifest = deploy(w3, dev_account(0), dev_account(1).address)
    manifest.save(settings.resolved_manifest_path)
    return manifest


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


@app.command("worker")
def worker_cmd(
    once: Annotated[bool, typer.Option(help="one step, then exit")] = False,
    interval: Annotated[float, typer.Option(help="seconds between steps")] = 0.5,
) -> None:
    """Run the anchoring worker (one leader at a time, elected through the database)."""

    settings = Settings()
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
                typer.echo(f"        what to do: {finding.code.info.officer_action}")
        for factor in result.risk_factors:
            typer.echo(f"  risk +{factor.points:<3} {factor.name}: {factor.why}")
    raise typer.Exit(VERDICT_EXIT[result.verdict.value])


@app.command("verify")
def verify_cmd(
    shipment: Annotated[str, typer.Argument(help="shipment attestation UID (0x...)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Verify a shipment recorded in this ledger (exit 0 verified, 10 flagged, 11 unverifiable)."""
    from ledger.verify.evidence import EvidenceError

    ledger = open_ledger(Settings())
    try:
        result = ledger.verify_shipment(shipment)
    except EvidenceError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    _print_verdict(result, as_json)


@app.command("export-bundle")
def export_bundle_cmd(
    shipment: Annotated[str, typer.Argument(help="shipment attestation UID (0x...)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="bundle file to write")] = Path("bundle.json"),
) -> None:
    """Export a shipment's self-contained proof bundle (JSON)."""
    from ledger.verify.evidence import EvidenceError

    ledger = open_ledger(Settings())
    try:
        bundle = ledger.export_bundle(shipment)
    except EvidenceError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    out.write_text(json.dumps(bundle, indent=1))
    typer.echo(f"wrote {out} ({len(bundle['attestations'])} attestations)")


@app.command("verify-bundle")
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
        settings = Settings()
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
        _print_verdict(result, as_json)
        return
    from ledger.core import Ledger
    from ledger.mirror import HttpPeer
    from ledger.mirror import mirror as mirror_from

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
            report = mirror_from(copy, [HttpPeer(url) for url in mirror], progress=_progress_printer("mirroring"))
            for problem in report.problems:
                typer.echo(f"peer {problem.peer}, batch {problem.batch}: {problem.what}: {problem.detail}", err=True)
            result = copy.verify_bundle(data, policy)
        finally:
            copy.close()
    _print_verdict(result, as_json)


@app.command("mirror")
def mirror_cmd(
    peer: Annotated[
        list[str] | None, typer.Option(help="peer node API URL (repeatable; default $PROVENANCE_PEERS)")
    ] = None,
    follow: Annotated[bool, typer.Option(help="keep mirroring new batches until stopped")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Copy the public ledger from untrusted peers into this node's store, checking every
    batch against its on-chain root (exit 0 complete, 4 gaps remain)."""
    from ledger.mirror import HttpPeer
    from ledger.mirror import follow as follow_peers
    from ledger.mirror import mirror as mirror_from

    settings = Settings()
    urls = peer or list(settings.peers)
    if not urls:
        raise fail("no peers: give --peer URL or set PROVENANCE_PEERS", EXIT_INPUT)
    ledger = open_ledger(settings)
    peers = [HttpPeer(url) for url in urls]
    try:
        if follow:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            follow_peers(ledger, peers, stop)
            return
        report = mirror_from(ledger, peers, progress=None if as_json else _progress_printer("mirroring"))
        watermark = ledger.completeness.watermark(ledger.chain_view.snapshot(max_age=0))
    finally:
        ledger.close()
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "completeness": watermark.to_json()}, indent=2))
    else:
        for problem in report.problems:
            typer.echo(f"peer {problem.peer}, batch {problem.batch}: {problem.what}: {problem.detail}", err=True)
        typer.echo(f"stored {report.records_stored} records in {report.batches_stored} batches; {watermark.describe()}")
    raise typer.Exit(0 if not report.gaps else EXIT_DISCREPANCY)


def _progress_printer(label: str) -> Any:
    def show(done: int, total: int) -> None:
        typer.echo(f"\r{label}: batch {done}/{total}", err=True, nl=done >= total)

    return show


apikey_app = typer.Typer(help="Scoped API keys for customs, auditors and admins.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="who holds it (e.g. 'FR customs, Le Havre lane 3')")],
    scopes: Annotated[str, typer.Option(help="comma-separated: customs, auditor, admin")],
) -> None:
    """Create a key; the token is printed once and never stored."""
    from ledger.access import create_api_key

    ledger = open_ledger(Settings())
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

    if not revoke_api_key(open_ledger(Settings()).sessions, key_id):
        raise fail(f"no live key {key_id}", EXIT_INPUT)
    typer.echo(f"revoked {key_id}")


@apikey_app.command("list")
def apikey_list() -> None:
    """List keys (ids, names, scopes; never secrets)."""
    from ledger.access import list_api_keys

    for key in list_api_keys(open_ledger(Settings()).sessions):
        typer.echo(f"{key['id']}  {key['scopes']:<24} {'REVOKED ' if key['revoked'] else ''}{key['name']}")


@app.command("migrate")
def migrate_cmd() -> None:
    """Bring the database schema to the latest version."""
    from ledger.store.db import make_engine, migrate

    settings = Settings()
    migrate(make_engine(settings.resolved_database_url))
    typer.echo(f"migrated {settings.resolved_database_url.split('@')[-1]}")


keys_app = typer.Typer(help="Signing keys in encrypted keystore files.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _password(confirm: bool) -> str:
    password = Settings().key_password
    if password:
        return password
    return str(typer.prompt("keystore password", hide_input=True, confirmation_prompt=confirm))


@keys_app.command("new")
def keys_new(out: Annotated[Path, typer.Option(help="keystore file to create (mode 0600)")]) -> None:
    """Create a new key and save it encrypted; prints its address."""
    from eth_account import Account

    from ledger.chain.accounts import write_keystore

    account = Account.create()
    try:
        write_keystore(account, out, _password(confirm=True))
    except (KeyLoadError, FileExistsError) as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    typer.echo(account.address)


@keys_app.command("import")
def keys_import(
    private_key_file: Annotated[Path, typer.Option(help="file holding a 0x-hex private key")],
    out: Annotated[Path, typer.Option(help="keystore file to create (mode 0600)")],
) -> None:
    """Encrypt an existing private key into a keystore file."""
    from eth_account import Account

    from ledger.chain.accounts import write_keystore

    try:
        account = Account.from_key(private_key_file.read_text().strip())
        write_keystore(account, out, _password(confirm=True))
    except (OSError, ValueError, KeyLoadError) as exc:
        raise fail(f"cannot import: {exc}", EXIT_INPUT) from exc
    typer.echo(account.address)


def load_document(path: Path) -> object:
    """The JSON or YAML (by suffix) document in `path`; a ValueError naming the file,
    line and column when it does not parse, or the file when it cannot be read."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
            raise ValueError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def _load_fields(path: Path) -> dict[str, object]:
    data = load_document(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of fields (name: value)")
    return data


def _names(option: str | None) -> set[str]:
    return {n.strip() for n in (option or "").split(",") if n.strip()}


def _disclosure_store(settings: Settings, keystore: Path | None, store: Path | None, address: str) -> Path:
    """The holder's salt store: --disclosure-store, else beside the keystore, else (a dev
    key) under the state directory."""
    from ledger.disclosure import default_store_path

    if store is not None:
        return store
    if keystore is not None:
        return default_store_path(keystore)
    return settings.home / "holder" / f"{address.lower()}.disclosures"


@app.command("sign")
def sign_cmd(
    kind: Annotated[str, typer.Argument(help="production, transfer, shipment, licence, ... (or the EIP-712 name)")],
    fields: Annotated[Path, typer.Option(help="JSON or YAML file with the payload fields")],
    subject: Annotated[str, typer.Option(help="what it is about, e.g. lot:LOT-42 or shipment:SHP-1")],
    ref: Annotated[list[str] | None, typer.Option(help="UID of an earlier attestation (repeatable)")] = None,
    keystore: Annotated[Path | None, typer.Option(help="encrypted keystore of the signer")] = None,
    dev_key: Annotated[int | None, typer.Option(help="well-known dev account index (dev chain only)")] = None,
    disclose: Annotated[str | None, typer.Option(help="comma-separated fields to reveal (default: all)")] = None,
    confidential: Annotated[str | None, typer.Option(help="revealed fields to store encrypted")] = None,
    expires_at: Annotated[int, typer.Option(help="unix time it expires (0: never)")] = 0,
    manifest: Annotated[Path | None, typer.Option(help="deployment manifest (the EIP-712 domain)")] = None,
    submit: Annotated[str | None, typer.Option(help="API base URL to submit to, e.g. http://127.0.0.1:8000")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the signed submission here")] = None,
    disclosure_store: Annotated[
        Path | None,
        typer.Option(help="the holder's encrypted salt store (default: KEYSTORE.disclosures beside the keystore)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Sign an attestation (and optionally submit it). Every field's value and salt is
    kept in your own encrypted disclosure store (beside the keystore, mode 0600, never
    sent); undisclosed fields never leave this machine, and `provenance disclose` reveals
    them later to whom you choose. `provenance kinds show KIND` lists a kind's fields."""
    from ledger.disclosure import DisclosureError, HolderStore, check_field_names
    from ledger.eip712 import Domain
    from ledger.kinds import Kind
    from ledger.submission import build_submission_with_salts

    settings = Settings()
    try:
        the_kind = Kind.parse(kind)
        trusted = load_manifest(settings, manifest)
        if keystore is not None:
            account = load_keystore(keystore, _password(confirm=False))
        elif dev_key is not None:
            if require_dev_chain(connect(settings.resolved_rpc_url)) != trusted.chain_id:
                raise KeyLoadError(f"the manifest is for chain {trusted.chain_id}, not the chain connected")
            account = dev_account(dev_key)
        else:
            raise ValueError("give --keystore (or --dev-key on the development chain)")
        values = _load_fields(fields)
        check_field_names(the_kind, values, _names(disclose), "--disclose")
        check_field_names(the_kind, values, _names(confidential), "--confidential")
        submission, holder_copy = build_submission_with_salts(
            account,
            the_kind,
            Domain(trusted.chain_id, trusted.ledger),
            values,
            subject=subject,
            refs=ref or [],
            expires_at=expires_at,
            disclose=_names(disclose) if disclose is not None else None,
            confidential=sorted(_names(confidential)),
        )
        store_path = _disclosure_store(settings, keystore, disclosure_store, account.address)
        HolderStore(store_path, bytes(account.key), account.address).add(holder_copy)
    except ChainUnavailable as exc:  # a dev key needs the dev chain to prove it is one
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    except (OSError, ValueError, KeyLoadError, FileNotFoundError, DisclosureError) as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    if out is not None:
        out.write_text(json.dumps(submission, indent=1))
    if submit is None:
        typer.echo(json.dumps(submission, indent=1) if as_json else f"signed {the_kind.type_name} {submission['uid']}")
        return
    import httpx

    try:
        answer = httpx.post(f"{submit.rstrip('/')}/v1/attestations", json=submission, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {submit}: {exc}", EXIT_UNAVAILABLE) from exc
    body = answer.json()
    if as_json:
        typer.echo(json.dumps(body, indent=1))
    elif answer.status_code in (200, 201):
        typer.echo(f"{body['status']} {the_kind.type_name} {body['uid']}")
    else:
        typer.secho(f"rejected: {body.get('reason')} ({body.get('field')}): {body.get('detail')}", fg="red", err=True)
    if answer.status_code not in (200, 201):
        raise typer.Exit(EXIT_INPUT if answer.status_code < 500 else EXIT_UNAVAILABLE)


kinds_app = typer.Typer(help="The attestation kinds and their fields.", invoke_without_command=True)
app.add_typer(kinds_app, name="kinds")


@kinds_app.callback()
def kinds_list(ctx: typer.Context) -> None:
    """List every kind with its references and fields (optional ones marked ?)."""
    from ledger.kinds_doc import kinds_summary

    if ctx.invoked_subcommand is None:
        typer.echo(kinds_summary())


@kinds_app.command("show")
def kinds_show(
    kind: Annotated[str, typer.Argument(help="a kind: Shipment, shipment, licence, ...")],
    as_json: Annotated[bool, typer.Option("--json", help="the kind's JSON Schema")] = False,
) -> None:
    """Explain a kind: each field's type, allowed values, meaning and the checks that read it."""
    from ledger.kinds import Kind
    from ledger.kinds_doc import json_schema, kind_text

    try:
        the_kind = Kind.parse(kind)
    except ValueError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    typer.echo(json.dumps(json_schema(the_kind), indent=1) if as_json else kind_text(the_kind))


@app.command("disclose")
def disclose_cmd(
    uid: Annotated[str, typer.Argument(help="UID of an attestation you signed (0x...)")],
    fields: Annotated[str, typer.Option(help="comma-separated fields to reveal, e.g. design,title")],
    out: Annotated[Path, typer.Option(help="the disclosure document (or, with --bundle, the bundle) to write")],
    keystore: Annotated[Path | None, typer.Option(help="encrypted keystore of the signer")] = None,
    dev_key: Annotated[int | None, typer.Option(help="well-known dev account index (dev chain only)")] = None,
    disclosure_store: Annotated[
        Path | None, typer.Option(help="the salt store `sign` wrote (default: KEYSTORE.disclosures)")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="add the fields to this proof bundle's entry instead; --out gets the bundle")
    ] = None,
) -> None:
    """Reveal chosen fields of an attestation you signed, with their salts, from your own
    disclosure store: customs check them against the anchored commitment
    (`POST /v1/attestations/UID/disclosures`, or inside a bundle with `--bundle`)."""
    from ledger.disclosure import DisclosureError, HolderStore, add_to_bundle, make_disclosure

    settings = Settings()
    try:
        if keystore is not None:
            account = load_keystore(keystore, _password(confirm=False))
        elif dev_key is not None:
            account = dev_account(dev_key)
        else:
            raise ValueError("give --keystore (the key that signed it; or --dev-key on the development chain)")
        store_path = _disclosure_store(settings, keystore, disclosure_store, account.address)
        store = HolderStore(store_path, bytes(account.key), account.address)
        document = make_disclosure(store.get(uid), _names(fields))
        if bundle is not None:
            presented = load_document(bundle)
            if not isinstance(presented, dict):
                raise ValueError(f"{bundle}: not a proof bundle")
            result: dict[str, Any] = add_to_bundle(presented, document)
        else:
            result = document
    except (OSError, ValueError, KeyLoadError, DisclosureError) as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    out.write_text(json.dumps(result, indent=1))
    shown = ", ".join(sorted(document["payload"]["fields"]))
    typer.echo(f"disclosed {shown} of {document['uid']} {'in bundle ' if bundle else ''}to {out}")


@app.command("check-disclosure")
def check_disclosure_cmd(
    document: Annotated[Path, typer.Argument(help="disclosure document written by `provenance disclose`")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check disclosed fields against the commitment this node holds (exit 0 all valid,
    1 some field refused or the document is malformed)."""
    from ledger.disclosure import check_disclosure

    try:
        data = load_document(document)
        ledger = open_ledger(Settings(), create_key=False)
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


@app.command("status")
def status_cmd(
    uid: Annotated[str, typer.Argument(help="attestation UID")],
    api: Annotated[
        str | None, typer.Option(help="API base URL (default http://127.0.0.1:$PROVENANCE_API_PORT)")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key with the customs or auditor scope (or $PROVENANCE_API_KEY)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Anchoring status of a submitted attestation (pending, sealed, sent, anchored)."""

    import httpx

    settings = Settings()
    base = (api or f"http://127.0.0.1:{settings.api_port}").rstrip("/")
    token = key or settings.api_key
    if not token:
        raise fail("no API key: pass --key or set PROVENANCE_API_KEY (`provenance apikey create`)", EXIT_INPUT)
    try:
        answer = httpx.get(f"{base}/v1/attestations/{uid}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(
            f"the API at {base} did not answer ({type(exc).__name__}); is `provenance serve` running?", EXIT_UNAVAILABLE
        ) from exc
    if answer.status_code in (401, 403):
        raise fail(
            f"the API at {base} refused the key ({answer.status_code}): it needs the customs or auditor scope",
            EXIT_INPUT,
        )
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        raise fail(
            f"{detail} ({base}, HTTP {answer.status_code})",
            EXIT_INPUT if answer.status_code < 500 else EXIT_UNAVAILABLE,
        )
    anchor = answer.json()["anchor"]
    if as_json:
        typer.echo(json.dumps(anchor, indent=1))
    else:
        where = (
            f" in batch {anchor['batchIndex']} (block {anchor['blockNumber']})"
            if anchor["batchIndex"] is not None
            else ""
        )
        typer.echo(f"{anchor['status']}{where}")


audit_app = typer.Typer(help="Auditor tools: replay the whole history from the chain.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("replay")
def audit_replay(
    archive: Annotated[Path | None, typer.Option(help="replay an exported archive instead of the database")] = None,
    manifest: Annotated[Path | None, typer.Option(help="deployment manifest")] = None,
    rpc_url: Annotated[str | None, typer.Option(help="chain RPC URL (default $PROVENANCE_RPC_URL)")] = None,
    json_out: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    html_out: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    unanchored_limit: Annotated[float, typer.Option(help="seconds a record may wait to be anchored")] = 3600.0,
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

    settings = Settings()
    trusted = load_manifest(settings, manifest)
    deployment = audit.replay_deployment(trusted, rpc_url or settings.resolved_rpc_url)
    state = audit.ReplayState.load(checkpoint) if checkpoint is not None and checkpoint.exists() else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    clean = True
    while True:
        store_registry = store_batches = None
        total = 0
        if archive is not None:
            data = audit.archive_source(archive)
        else:
            from sqlalchemy import func, select

            from ledger.core import Ledger
            from ledger.registry_view import RegistryView
            from ledger.store.models import AttestationRow, BatchRow

            ledger = Ledger.open(settings, manifest=trusted, create_key=False)
            with ledger.sessions() as session:
                total = int(session.scalar(select(func.count(AttestationRow.id))) or 0)
                store_batches = dict(session.execute(select(BatchRow.chain_index, BatchRow.root)).tuples().all())
            store_registry = RegistryView(ledger.sessions)
            data = audit.store_source(ledger)
        try:
            report, state = audit.replay(
                deployment,
                data,
                state=state,
                expected_total=total,
                unanchored_limit=unanchored_limit,
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

    count = audit.export_archive(open_ledger(Settings(), create_key=False), out)
    typer.echo(f"wrote {count} attestations to {out}")


participant_app = typer.Typer(help="Registrar actions on the participant registry.", no_args_is_help=True)
app.add_typer(participant_app, name="participant")


def _registrar_call(
    action: str, build: Callable[[Any], Any], registrar_keystore: Path | None, rpc_url: str | None
) -> None:
    """Send one registry transaction as the registrar; prints the transaction hash."""
    from ledger.chain.client import call_and_send
    from ledger.chain.fees import FeeCeilingExceeded, FeePolicy

    settings = Settings()
    try:
        manifest = load_manifest(settings)
        w3 = connect(rpc_url or settings.resolved_rpc_url)
        if registrar_keystore is not None:
            registrar = load_keystore(registrar_keystore, _password(confirm=False))
        else:
            require_dev_chain(w3)
            registrar = dev_account(0)
        fn = build(Deployment(w3, manifest).registry.functions)
        receipt = call_and_send(w3, registrar, fn, fees=FeePolicy.from_settings(settings))
    except (FileNotFoundError, KeyLoadError, ValueError) as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    except (ChainUnavailable, FeeCeilingExceeded) as exc:
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    except ChainRevert as exc:
        raise fail(f"the registry refused {action}: {exc}", EXIT_REVERT) from exc
    typer.echo(f"{action}: tx 0x{bytes(receipt['transactionHash']).hex()} (block {receipt['blockNumber']})")


RegistrarKey = Annotated[Path | None, typer.Option(help="registrar keystore (dev key on the dev chain if omitted)")]
RpcUrl = Annotated[str | None, typer.Option(help="chain RPC URL (default $PROVENANCE_RPC_URL)")]


def _address(text: str) -> str:
    import re

    from web3 import Web3

    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", text):
        raise ValueError(f"{text!r} is not an address: expected 0x followed by 40 hex digits (20 bytes)")
    return str(Web3.to_checksum_address(text))


def _roles(text: str) -> int:
    from ledger.roles import Role

    return int(Role.parse(text))  # ValueError on an unknown role


@participant_app.command("admit")
def participant_admit(
    address: Annotated[str, typer.Argument(help="the participant's key address")],
    roles: Annotated[str, typer.Option(help="comma-separated: rights_holder, manufacturer, exporter, ...")],
    name: Annotated[str, typer.Option(help="stable identifier of the participant (e.g. its EORI number)")],
    valid_days: Annotated[int, typer.Option(help="validity window from now, in days (0: no end)")] = 0,
    registrar_keystore: RegistrarKey = None,
    rpc_url: RpcUrl = None,
) -> None:
    """Admit a key with roles and a validity window (starting now: never backdated)."""
    import time as _time

    from web3 import Web3

    from ledger.chain.deploy import FOREVER

    until = FOREVER if valid_days == 0 else int(_time.time()) + valid_days * 86400
    _registrar_call(
        "admit",
        lambda f: f.admit(_address(address), Web3.keccak(text=name), _roles(roles), 0, until),
        registrar_keystore,
        rpc_url,
    )


@participant_app.command("grant")
def participant_grant(
    address: str, roles: str, registrar_keystore: RegistrarKey = None, rpc_url: RpcUrl = None
) -> None:
    """Add roles to a key, from now on."""
    _registrar_call("grant", lambda f: f.grantRoles(_address(address), _roles(roles)), registrar_keystore, rpc_url)


@participant_app.command("revoke-roles")
def participant_revoke(
    address: str, roles: str, registrar_keystore: RegistrarKey = None, rpc_url: RpcUrl = None
) -> None:
    """Take roles from a key, from now on."""
    _registrar_call(
        "revoke roles", lambda f: f.revokeRoles(_address(address), _roles(roles)), registrar_keystore, rpc_url
    )


@participant_app.command("suspend")
def participant_suspend(
    address: str,
    reason: Annotated[str, typer.Option(help="why (recorded as a hash)")],
    registrar_keystore: RegistrarKey = None,
    rpc_url: RpcUrl = None,
) -> None:
    """Suspend a key from now on."""
    from web3 import Web3

    _registrar_call(
        "suspend", lambda f: f.suspend(_address(address), Web3.keccak(text=reason)), registrar_keystore, rpc_url
    )


@participant_app.command("reinstate")
def participant_reinstate(address: str, registrar_keystore: RegistrarKey = None, rpc_url: RpcUrl = None) -> None:
    """Lift a suspension from now on."""
    _registrar_call("reinstate", lambda f: f.reinstate(_address(address)), registrar_keystore, rpc_url)


@participant_app.command("rotate")
def participant_rotate(old: str, new: str, registrar_keystore: RegistrarKey = None, rpc_url: RpcUrl = None) -> None:
    """Replace a key (a registrar's act: a key cannot rotate itself).

    The new key takes over from now, or from the old key's window start if that is later;
    the old key is retired and its past signatures stay valid."""
    _registrar_call("rotate", lambda f: f.rotateKey(_address(old), _address(new)), registrar_keystore, rpc_url)


@app.command("demo")
def demo_cmd() -> None:
    """Seed the demo story into the configured ledger (development chain only)."""
    from ledger.demo import seed_demo

    ids = seed_demo(open_ledger(Settings()))
    typer.echo(f"clean shipment   {ids['shipment']}\nflagged shipment {ids['flagged_shipment']}")


@app.command("manifest")
def show_manifest(path: Annotated[Path | None, typer.Argument(help="manifest file")] = None) -> None:
    """Print the deployment manifest."""
    settings = Settings()
    try:
        manifest = load_manifest(settings, path)
    except FileNotFoundError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    typer.echo(json.dumps(json.loads(manifest.to_json()), indent=2))


def main() -> None:
    """Console-script entry point."""
    app(obj=settings_or_exit())


from ledger.cli.epcis import app as epcis_app  # noqa: E402 - the epcis commands live in their own module

app.add_typer(epcis_app, name="epcis")
