"""Chain or database trouble as one sentence an officer can act on, never a library's
exception text (`HTTPConnectionPool(host=...): Max retries exceeded ...`).

The one place for this wording: verdict findings (through the chain view, which raises
`ChainUnavailable` carrying the sentence), the command line and the API's problem
responses all say the same thing for the same trouble. A sentence names where the
trouble is (the chain's RPC address, the database without its password), what happened
in plain words, and what to do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .chain.client import ChainUnavailable
from .store.db import STORE_UNAVAILABLE

# What a verdict is while the evidence cannot be read: never VERIFIED (fail closed).
MEANWHILE = "retry; the verdict is UNVERIFIABLE meanwhile"


def redacted(url: str) -> str:
    """`url` without a password (`postgresql://user:secret@host/db` -> `postgresql://user@host/db`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparseable address)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def endpoint_of(w3: Any) -> str:
    """The RPC address(es) a web3 connection talks to, for a sentence ("the chain at ...")."""
    provider = getattr(w3, "provider", None)
    endpoints = getattr(provider, "endpoints", None)  # the failover provider
    if endpoints:
        return " / ".join(redacted(str(getattr(e, "url", e))) for e in endpoints)
    uri = getattr(provider, "endpoint_uri", None)
    return redacted(str(uri)) if uri else "the configured RPC address"


def _answered_badly(exc: BaseException) -> str | None:
    """What went wrong when the chain answered but not usefully (None: it did not answer)."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.HTTPError) and seen.response is not None:
            return f"answered HTTP {seen.response.status_code}"
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, OSError)):
            return None
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, ChainUnavailable):
        return None
    return f"gave an answer that could not be used ({type(exc).__name__})"


def chain_trouble(exc: BaseException, endpoint: str) -> str:
    """The sentence for a chain that could not be read at `endpoint` (an RPC address)."""
    from .chain.failover import ChainMismatch

    if isinstance(exc, ChainMismatch):
        return f"the chain at {endpoint} is not the trusted deployment's chain ({exc}); {MEANWHILE}"
    what = _answered_badly(exc) or "did not answer"
    return f"the chain at {endpoint} {what}; {MEANWHILE}"


# What a write is while the database cannot be reached: nothing half-done, and a
# submission is idempotent, so sending it again is safe.
NOTHING_STORED = "nothing was stored; retry later (sending the same again is safe)"


def store_trouble(where: str, *, verifying: bool | None = True) -> str:
    """The sentence for a database at `where` (a URL, redacted here) that could not be
    read while verifying (the verdict is UNVERIFIABLE), written (nothing was stored), or
    opened for anything else (None)."""
    then = {True: MEANWHILE, False: NOTHING_STORED, None: "retry once it answers again"}[verifying]
    scheme, sep, rest = redacted(where).partition("://")
    shown = scheme.split("+")[0] + sep + rest  # the database, not the Python driver (postgresql+psycopg)
    return f"the database at {shown} did not answer; {then}"


def is_chain_trouble(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the chain could not be reached or answered
    an HTTP error: trouble to report as a sentence, not a fault in the node."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ChainUnavailable, requests.RequestException, ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_store_trouble(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached (not a bug, not bad input)."""
    return isinstance(exc, STORE_UNAVAILABLE)


def trouble_sentence(exc: BaseException, *, chain: str = "", store: str = "", verifying: bool | None = True) -> str:
    """One sentence for `exc`, raised while reading the chain at `chain` or the database
    at `store` (either may be unknown). A `ChainUnavailable` from the chain view already
    carries its sentence."""
    if is_store_trouble(exc):
        return store_trouble(store or "(the configured database)", verifying=verifying)
    if isinstance(exc, ChainUnavailable) and MEANWHILE in str(exc):
        return str(exc)
    return chain_trouble(exc, chain or "the configured RPC address")
