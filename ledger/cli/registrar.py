"""The registrar's commands: admit participants, grant and revoke roles, suspend,
reinstate and rotate keys on the on-chain registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore, require_dev_chain
from ledger.chain.client import ChainRevert, ChainUnavailable, Deployment, connect
from ledger.cli.common import (
    EXIT_INPUT,
    EXIT_REVERT,
    EXIT_UNAVAILABLE,
    fail,
    load_manifest,
    password,
    run_settings,
)

PANEL = "Registrar"
app = typer.Typer()
participant_app = typer.Typer(help="Registrar actions on the participant registry.", no_args_is_help=True)
app.add_typer(participant_app, name="participant", rich_help_panel=PANEL)


def _registrar_call(
    action: str, build: Callable[[Any], Any], registrar_keystore: Path | None, rpc_url: str | None
) -> None:
    """Send one registry transaction as the registrar; prints the transaction hash."""
    from ledger.chain.client import call_and_send
    from ledger.chain.fees import FeeCeilingExceeded, FeePolicy

    settings = run_settings()
    try:
        manifest = load_manifest(settings)
        w3 = connect(rpc_url or settings.resolved_rpc_url)
        if registrar_keystore is not None:
            registrar = load_keystore(registrar_keystore, password(confirm=False))
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
    # The name itself on chain (its hash is the participant id), so verdicts can show it.
    _registrar_call("publish name", lambda f: f.publishName(_address(address), name), registrar_keystore, rpc_url)


@participant_app.command("publish-name")
def participant_publish_name(
    address: Annotated[str, typer.Argument(help="the participant's key address")],
    name: Annotated[str, typer.Option(help="the name it was admitted under (its hash is the participant id)")],
    registrar_keystore: RegistrarKey = None,
    rpc_url: RpcUrl = None,
) -> None:
    """Publish the name of a participant admitted earlier, so verdicts show it (refused
    unless the name is the one it was admitted under)."""
    _registrar_call("publish name", lambda f: f.publishName(_address(address), name), registrar_keystore, rpc_url)


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
