"""The ledger core: signed provenance records, their anchoring on chain, verification
and the auditor's replay, with no dependency on the web framework or on `api`.

Configuration is one `ledger.config.Settings`, read from the environment by that module
alone and handed to everything else (`Ledger.open(settings)`); `ledger.core.Ledger`
composes the store, the chain view, ingest, verification and anchoring for one node.
`ledger.cli` holds the core's commands; the full `provenance` command line, with the
HTTP service, is composed in `api.cli`.
"""
