"""The test suite (real anvil, real SQLite and PostgreSQL, real subprocesses and HTTP).

Typing: mypy checks these modules with every flag of `--strict` (pyproject.toml). Where
`Any` remains it stands for JSON (`dict[str, Any]`: submissions, bundles, reports and
JSON-RPC answers, as in `ledger`), for keyword arguments forwarded to a function whose
parameters have several types, or for web3 contract calls (typed `Any` in
`ledger.chain.client` as well); any other use says why where it is.
"""
