"""What every group of `provenance` commands shares: exit codes, the one-line error,
the settings of this run, the deployment manifest, documents and verdict printing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from eth_account.signers.local import LocalAccount

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore, require_dev_chain
from ledger.chain.client import ChainUnavailable, Deployment, connect
from ledger.chain.deploy import deploy
from ledger.chain.manifest import Manifest
from ledger.config import Settings

EXIT_INPUT = 1
EXIT_UNAVAILABLE = 2
EXIT_REVERT = 3
EXIT_DISCREPANCY = 4  # replay found discrepancies; mirroring left gaps
EXIT_FLAGGED = 10
EXIT_UNVERIFIABLE = 11
VERDICT_EXIT = {"VERIFIED": 0, "FLAGGED": EXIT_FLAGGED, "UNVERIFIABLE": EXIT_UNVERIFIABLE}


def run_settings() -> Settings:
    """The settings built and validated once at start-up by `main` and passed down through
    the command line's context; read afresh only where the command line was entered
    another way (a test's `CliRunner` on `app`)."""
    import click

    ctx = click.get_current_context(silent=True)
    built = ctx.find_object(Settings) if ctx is not None else None
    return built if built is not None else Settings()


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Print `error: message` on stderr; the caller raises the returned exit."""
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


def open_ledger(settings: Settings, *, verifying: bool | None = None, **options: Any) -> Any:
    """This node's `Ledger` (database and chain of the settings), or exit 1 naming what
    is missing, or 2 with a sentence when the database does not answer."""
    from ledger.core import Ledger
    from ledger.trouble import is_store_trouble, trouble_sentence

    manifest = options.pop("manifest", None) or load_manifest(settings)
    try:
        return Ledger.open(settings, manifest=manifest, **options)
    except Exception as exc:
        if is_store_trouble(exc):
            where = settings.resolved_database_url
            raise fail(trouble_sentence(exc, store=where, verifying=verifying), EXIT_UNAVAILABLE) from exc
        raise


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


def print_verdict(result: object, as_json: bool) -> None:
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
        for line in result.text_lines():
            typer.echo(line)
    raise typer.Exit(VERDICT_EXIT[result.verdict.value])


def catch_up_printer() -> Callable[[int, int, int], None]:
    """Progress of a catch-up on one line: a bar of the batches done, records stored,
    rate and time left."""
    started = time.monotonic()

    def show(done: int, total: int, records: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        left = (total - done) * elapsed / done if done else 0.0
        filled = 30 * done // total if total else 30
        typer.echo(
            f"\rmirroring [{'#' * filled}{'.' * (30 - filled)}] batch {done}/{total}, {records:,} records stored, "
            f"{records / elapsed:,.0f} records/s, about {left:,.0f} s left   ",
            err=True,
            nl=done >= total,
        )

    return show


def progress_printer(label: str) -> Any:
    def show(done: int, total: int) -> None:
        typer.echo(f"\r{label}: batch {done}/{total}", err=True, nl=done >= total)

    return show


def password(confirm: bool) -> str:
    """The keystore password: PROVENANCE_KEY_PASSWORD, else asked for (hidden)."""
    given = run_settings().key_password
    if given:
        return given
    return str(typer.prompt("keystore password", hide_input=True, confirmation_prompt=confirm))


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


def names(option: str | None) -> set[str]:
    return {n.strip() for n in (option or "").split(",") if n.strip()}


def signing_account(settings: Settings, trusted: Manifest, keystore: Path | None, dev_key: int | None) -> LocalAccount:
    """The signer's key: an encrypted keystore (password from PROVENANCE_KEY_PASSWORD, else
    asked for), or a well-known development key — accepted only while the chain connected
    is a development chain and the one the manifest names. ValueError / KeyLoadError for
    bad input, ChainUnavailable when the chain cannot be asked."""
    if keystore is not None:
        return load_keystore(keystore, password(confirm=False))
    if dev_key is not None:
        if require_dev_chain(connect(settings.resolved_rpc_url)) != trusted.chain_id:
            raise KeyLoadError(f"the manifest is for chain {trusted.chain_id}, not the chain connected")
        return dev_account(dev_key)
    raise ValueError("give --keystore (or --dev-key on the development chain)")
