"""The `provenance` command line in full: the core's commands (`ledger.cli`) plus the
ones that run the HTTP service (`up`, `serve`).

This is the composition root: the one place that imports both the web layer and the
core, so that the core never depends on the web framework, not even by name. It also
builds the one `Settings` (ledger/config.py) at start-up, before any command runs: a bad
value stops there with one line naming its variable. The object travels in the command
line's context (`ctx.obj`); every command, here and in ledger/cli, takes it from there
(`ledger.cli.common.run_settings`).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from ledger.chain.anvil import AnvilError, start_anvil
from ledger.cli.common import EXIT_UNAVAILABLE, ensure_deployed, fail, run_settings
from ledger.cli.main import app
from ledger.cli.operator import PANEL as OPERATOR
from ledger.config import Settings, settings_or_exit
from ledger.private import write_private

from .app import create_app


@app.command(rich_help_panel=OPERATOR)
def up(
    port: Annotated[int | None, typer.Option(help="anvil port (default $PROVENANCE_ANVIL_PORT or 8545)")] = None,
    api_port: Annotated[int | None, typer.Option(help="HTTP port (default $PROVENANCE_API_PORT or 8000)")] = None,
    block_time: Annotated[float, typer.Option(help="seconds between blocks on the dev chain")] = 1.0,
    exit_after_deploy: Annotated[bool, typer.Option(help="stop once deployed (for scripts)")] = False,
) -> None:
    """Start the embedded system: local chain (state kept in $PROVENANCE_HOME), contracts
    deployed once, database migrated, demo story seeded once, anchoring worker and HTTP
    API running. Runs until interrupted."""
    settings = run_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        node = start_anvil(
            port=port or settings.anvil_port,
            state_file=settings.chain_state_file,
            block_time=block_time,
            log_file=settings.home / "chain" / "anvil.log",
            binary_path=settings.anvil_bin,
        )
    except AnvilError as exc:
        raise fail(str(exc), EXIT_UNAVAILABLE) from exc
    stop = threading.Event()

    def request_stop(*_: object) -> None:
        stop.set()
        raise KeyboardInterrupt  # interrupts set-up (deploy, seeding) too; the finally stops the chain

    signal.signal(signal.SIGTERM, request_stop)
    try:
        manifest = ensure_deployed(settings, node.rpc_url)
        typer.echo(f"chain      {node.rpc_url} (chain id {manifest.chain_id}, state {settings.chain_state_file})")
        typer.echo(f"registry   {manifest.registry}")
        typer.echo(f"ledger     {manifest.ledger}")
        typer.echo(f"manifest   {settings.resolved_manifest_path}")
        typer.echo(manifest.to_json(), nl=False)
        sys.stdout.flush()
        if exit_after_deploy:
            typer.echo("ready", err=True)
            return
        _run_service(settings.replace(rpc_url=node.rpc_url), api_port or settings.api_port, stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        node.stop()
        typer.echo("stopped", err=True)


def _run_service(settings: Settings, api_port: int, stop: threading.Event) -> None:
    """Migrate, seed the demo once, run the anchoring worker and the HTTP API until stopped."""
    import uvicorn

    from ledger.access import create_api_key
    from ledger.core import Ledger
    from ledger.demo import seed_demo

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ledger = Ledger.open(settings)
    demo_file = settings.home / "demo.json"
    if not demo_file.exists():
        ids = seed_demo(ledger)
        _key, token = create_api_key(ledger.sessions, "demo customs officer", {"customs", "auditor"})
        write_private(
            demo_file,
            json.dumps(
                {"shipment": ids["shipment"], "flaggedShipment": ids["flagged_shipment"], "customsKey": token}, indent=2
            ),
        )
    demo = json.loads(demo_file.read_text())
    worker = ledger.anchoring_worker()
    threading.Thread(target=worker.run, args=(stop,), name="anchoring-worker", daemon=True).start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, ledger), host="127.0.0.1", port=api_port, log_level="warning")
    )
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def stop_server() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stop_server, daemon=True).start()
    base = f"http://127.0.0.1:{api_port}"
    typer.echo(f"api        {base}  (OpenAPI: {base}/docs)")
    typer.echo(f"customs key {demo['customsKey']}")
    for label, uid in (
        ("clean shipment (VERIFIED)", demo["shipment"]),
        ("flagged shipment (FLAGGED)", demo["flaggedShipment"]),
    ):
        typer.echo(f"demo {label}: {uid}")
        typer.echo(
            f"  curl -s -X POST -H 'Authorization: Bearer {demo['customsKey']}' {base}/v1/shipments/{uid}/verify"
        )
        typer.echo(
            f"  PROVENANCE_HOME={settings.home} PROVENANCE_RPC_URL={settings.resolved_rpc_url} "
            f".venv/bin/provenance verify {uid}"
        )
    typer.echo("(anchoring takes a few seconds after the first start: until then both are UNVERIFIABLE)")
    typer.echo("ready", err=True)
    sys.stdout.flush()
    server.run()
    ledger.close()


@app.command("serve", rich_help_panel=OPERATOR)
def serve_cmd(
    port: Annotated[int | None, typer.Option(help="HTTP port (default $PROVENANCE_API_PORT or 8000)")] = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="API processes (stateless; share the database)")] = 1,
) -> None:
    """Run the HTTP API only (run `provenance worker` separately for anchoring)."""
    import uvicorn

    settings = run_settings()
    port = port or settings.api_port
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return
    # Several processes: uvicorn starts each from an import string, so each builds its app
    # (and its settings) from the same environment this process read and validated.
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")


def main() -> None:
    """Entry point of the `provenance` command: the settings are read and validated once,
    here; a bad value exits 1 with one line naming its variable, before any command runs."""
    app(obj=settings_or_exit())


if __name__ == "__main__":
    main()
