"""The exporter's and rights holder's commands: keys, the kinds and their fields,
signing, late disclosure and anchoring status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore
from ledger.chain.client import ChainUnavailable
from ledger.cli.common import (
    EXIT_INPUT,
    EXIT_UNAVAILABLE,
    fail,
    load_document,
    load_manifest,
    names,
    password,
    run_settings,
    signing_account,
)
from ledger.config import Settings

PANEL = "Exporter and rights holder"
app = typer.Typer()
keys_app = typer.Typer(help="Signing keys in encrypted keystore files.", no_args_is_help=True)
app.add_typer(keys_app, name="keys", rich_help_panel=PANEL)


@keys_app.command("new")
def keys_new(out: Annotated[Path, typer.Option(help="keystore file to create (mode 0600)")]) -> None:
    """Create a new key and save it encrypted; prints its address."""
    from eth_account import Account

    from ledger.chain.accounts import write_keystore

    account = Account.create()
    try:
        write_keystore(account, out, password(confirm=True))
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
        write_keystore(account, out, password(confirm=True))
    except (OSError, ValueError, KeyLoadError) as exc:
        raise fail(f"cannot import: {exc}", EXIT_INPUT) from exc
    typer.echo(account.address)


def _load_fields(path: Path) -> dict[str, object]:
    data = load_document(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of fields (name: value)")
    return data


def _disclosure_store(settings: Settings, keystore: Path | None, store: Path | None, address: str) -> Path:
    """The holder's salt store: --disclosure-store, else beside the keystore, else (a dev
    key) under the state directory."""
    from ledger.disclosure import default_store_path

    if store is not None:
        return store
    if keystore is not None:
        return default_store_path(keystore)
    return settings.home / "holder" / f"{address.lower()}.disclosures"


@app.command(rich_help_panel=PANEL, name="sign")
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

    settings = run_settings()
    try:
        the_kind = Kind.parse(kind)
        trusted = load_manifest(settings, manifest)
        account = signing_account(settings, trusted, keystore, dev_key)
        values = _load_fields(fields)
        check_field_names(the_kind, values, names(disclose), "--disclose")
        check_field_names(the_kind, values, names(confidential), "--confidential")
        submission, holder_copy = build_submission_with_salts(
            account,
            the_kind,
            Domain(trusted.chain_id, trusted.ledger),
            values,
            subject=subject,
            refs=ref or [],
            expires_at=expires_at,
            disclose=names(disclose) if disclose is not None else None,
            confidential=sorted(names(confidential)),
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
app.add_typer(kinds_app, name="kinds", rich_help_panel=PANEL)


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


@app.command(rich_help_panel=PANEL, name="disclose")
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

    settings = run_settings()
    try:
        if keystore is not None:
            account = load_keystore(keystore, password(confirm=False))
        elif dev_key is not None:
            account = dev_account(dev_key)
        else:
            raise ValueError("give --keystore (the key that signed it; or --dev-key on the development chain)")
        store_path = _disclosure_store(settings, keystore, disclosure_store, account.address)
        store = HolderStore(store_path, bytes(account.key), account.address)
        document = make_disclosure(store.get(uid), names(fields))
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


@app.command(rich_help_panel=PANEL, name="status")
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

    settings = run_settings()
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
