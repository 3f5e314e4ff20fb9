"""The `provenance` command line: a thin layer over the ledger core."""

from .main import app, main

__all__ = ["app", "main"]
