"""Entry point of the `provenance` command: the command groups of each user, assembled.

Each user's commands live in a module of their own (`exporter`, `customs`, `auditor`,
`registrar`, `operator`, `epcis`); `--help` lists them under one heading per user.
The HTTP service's commands (`up`, `serve`) are added by the composition root,
`api/cli.py`, so that the core never depends on the web layer.

Exit codes scripts can rely on: 0 success (or VERIFIED), 1 a usage or input error, 2 the
chain or database was unreachable, 3 a contract rejected the request, 4 discrepancies
(replay) or gaps (mirroring), 10 FLAGGED, 11 UNVERIFIABLE.
"""

from __future__ import annotations

import typer

from ledger.cli import auditor, customs, epcis, exporter, operator, registrar
from ledger.config import settings_or_exit

app = typer.Typer(help="provenance-ledger: signed provenance attestations anchored on chain.", no_args_is_help=True)
for group in (exporter.app, customs.app, auditor.app, registrar.app, operator.app):
    app.add_typer(group)
app.add_typer(epcis.app, name="epcis", rich_help_panel=exporter.PANEL)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point (`python -m ledger.cli`): the settings are read and
    validated once, here, and passed down to every command through the context."""
    app(obj=settings_or_exit())
