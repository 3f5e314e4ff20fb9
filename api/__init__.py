"""The HTTP service over the ledger core. Dependencies run one way: `api` imports
`ledger`, never the reverse.

`api.cli` is the composition root: it builds the `Settings` at start-up, before any
command runs (a bad value stops there, naming its variable), and hands them to `up` and
`serve`; `api.app.create_app(settings)` builds the application from them. (The core's
commands in `ledger.cli` still build their own `Settings()`, from the same environment
already validated at start-up.)
"""
