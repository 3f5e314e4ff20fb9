"""One settings object, read from `PROVENANCE_*` environment variables (documented in the
README's Configuration table) and validated by pydantic-settings.

The only module that reads the environment. The composition root (`api/cli.py`) builds a
`Settings` once at start-up and hands it down; the service, the command line and the
tests receive one, never `os.environ`. A bad value stops the start with a `SettingsError`
whose one-line message names each offending variable (`PROVENANCE_CONFIRMATIONS: must
be at least 1, got -1`). Nothing else is read: no `.env` file, no secrets directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, HttpUrl, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PROVENANCE_"
# The most attestations one batch may hold: no node seals more, and a mirroring node
# bounds what parsing a served batch may cost by it (`ledger.peers`).
MAX_BATCH_RECORDS = 4096

# Comma-separated in the environment ("a, b,c"); pydantic-settings would otherwise expect
# JSON for a tuple. Given in code, a tuple or list is taken as it is.
CommaList = Annotated[tuple[str, ...], NoDecode]


class SettingsError(ValueError):
    """A bad configuration value; the message is one line naming every offending variable."""


def _all_checks() -> tuple[str, ...]:
    # Imported here, not at the top: `ledger.verify` imports `ledger.ports`, which imports
    # this module for the `Settings` type, so a top-level import would be a cycle.
    from ledger.verify.checks import CHECKS

    return CHECKS


_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(url: str) -> str:
    """`url` unchanged if it is one well-formed http(s) URL; else a ValueError saying why."""
    try:
        _HTTP_URL.validate_python(url)
    except ValidationError as exc:
        why = exc.errors()[0]["msg"].removeprefix("Input should be a valid URL, ")
        raise ValueError(f"{url!r} is not an http(s) URL ({why})") from None
    return url


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Runtime configuration. Every field has a safe default for the embedded setup.

    Frozen: derive a variant with `replace(...)`, which validates again."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # VAR= (set but empty) means the default, as an unset VAR
        frozen=True,
        validate_by_name=True,  # code passes field names (batch_max_age_seconds=...)
        validate_by_alias=True,  # the environment uses the aliases below
        extra="forbid",  # a misspelt keyword in code fails (unknown variables are ignored)
    )

    home: Path = Field(Path("var"), description="state directory: chain state, SQLite database, manifest, data key")
    rpc_url: str | None = Field(None, description="the chain's JSON-RPC URL (default: the embedded anvil)")
    database_url: str | None = Field(None, description="SQLAlchemy URL (default: SQLite in the home)")
    manifest_path: Path | None = Field(
        None, validation_alias="PROVENANCE_MANIFEST", description="deployment manifest (default: in the home)"
    )
    data_key_path: Path | None = Field(
        None, validation_alias="PROVENANCE_DATA_KEY_FILE", description="AES key of confidential fields at rest"
    )
    confirmations: int = Field(2, ge=1, description="confirmations before an anchor counts")
    batch_max_size: int = Field(
        MAX_BATCH_RECORDS, ge=1, le=MAX_BATCH_RECORDS, description="attestations per batch at most"
    )
    batch_max_age_seconds: float = Field(
        5.0, ge=0, validation_alias="PROVENANCE_BATCH_MAX_AGE", description="seconds an attestation waits at most"
    )
    anchor_keystore: Path | None = Field(None, description="encrypted keystore of the anchoring account")
    anvil_port: int = Field(8545, ge=1, le=65535, description="port of the embedded anvil")
    api_port: int = Field(8000, ge=1, le=65535, description="port of the HTTP API")
    require_acceptance: bool = Field(False, description="custody hand-overs must be accepted by their recipient")
    mandatory_checks: CommaList = Field(
        default_factory=_all_checks, description="checks that must be VALID for VERIFIED (default: all)"
    )
    completeness_interval: float = Field(5.0, ge=0, description="seconds a completeness measurement is reused")
    peers: CommaList = Field((), description="other nodes' API URLs to mirror the public ledger from")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest HTTP request body")
    keepalive_requests: int = Field(
        100,
        ge=1,
        description="requests served on one HTTP keep-alive connection before the API ends it (spreads the "
        "clients over the API processes; see api/connections.py)",
    )
    max_batch: int = Field(500, ge=1, description="most attestations in one batch submission")
    rate_limit: str = Field("500", description="requests per credential: per second, or a `limits` expression")
    auth_failure_limit: str = Field("20/minute", description="failed authentications per client address")
    rate_limit_prefix: str = Field("provenance-ratelimit", description="Redis key prefix of the limit counters")
    anvil_bin: Path | None = Field(None, description="anvil binary (default: the npm package's)")
    # Secrets: never printed (repr=False).
    key_password: str | None = Field(None, repr=False, description="password of a keystore, for unattended use")
    api_key: str | None = Field(None, repr=False, description="key used by `provenance status`")
    redis_url: str | None = Field(
        None, description="shared store for the HTTP rate limits (redis://host:port/db); unset: in-process"
    )
    # Unset: the dev customs key, dev chain only.
    customs_keystore: Path | None = Field(
        None, description="the customs key that signs findings recorded from the console"
    )
    # The console reads batch roots there itself, not through this service.
    public_rpc_url: str | None = Field(
        None, description="the chain's JSON-RPC URL as officers' browsers reach it (default: rpc_url)"
    )
    # EIP-1559 fees (ledger/chain/fees.py).
    max_fee_gwei: float = Field(500.0, gt=0, description="fee ceiling per gas; above it anchoring pauses")
    priority_fee_gwei: float = Field(1.0, ge=0, description="the tip offered")
    fee_bump_percent: int = Field(20, ge=10, description="raise of a replacement (nodes refuse less than 10 %)")
    tx_stuck_seconds: float = Field(30.0, gt=0, description="an unmined transaction is replaced after this")
    confirmation_mode: Literal["depth", "safe", "finalized"] = Field(
        "depth", description="final by depth (confirmations), or by the chain's safe / finalized block tag"
    )
    rpc_urls: CommaList = Field((), description="several JSON-RPC URLs of one chain, tried in order (failover)")

    def __init__(self, **values: Any) -> None:
        """Read the environment (keyword arguments take precedence) and validate; a bad
        value raises `SettingsError` naming its variable, in one line."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None

    @field_validator("mandatory_checks", "peers", "rpc_urls", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("peers", "rpc_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_http_url(url) for url in value)

    @field_validator("rpc_url", "public_rpc_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("mandatory_checks")
    @classmethod
    def _known_checks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = _all_checks()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown checks {unknown}; known: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _tip_under_ceiling(self) -> Settings:
        if self.priority_fee_gwei > self.max_fee_gwei:
            raise ValueError(
                f"PROVENANCE_PRIORITY_FEE_GWEI ({self.priority_fee_gwei}) must not exceed "
                f"PROVENANCE_MAX_FEE_GWEI ({self.max_fee_gwei})"
            )
        return self

    def replace(self, **changes: Any) -> Settings:
        """These settings with `changes` (field names), validated again."""
        return Settings(**{**self.model_dump(), **changes})

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'ledger.db'}"

    @property
    def resolved_manifest_path(self) -> Path:
        return self.manifest_path or self.home / "deployment.json"

    @property
    def resolved_data_key_path(self) -> Path:
        return self.data_key_path or self.home / "data.key"

    @property
    def resolved_rpc_url(self) -> str:
        return self.rpc_url or f"http://127.0.0.1:{self.anvil_port}"

    @property
    def resolved_public_rpc_url(self) -> str:
        return self.public_rpc_url or self.resolved_rpc_url

    @property
    def chain_state_file(self) -> Path:
        return self.home / "chain" / "anvil-state.json"


def settings_or_exit() -> Settings:
    """The settings of this process, for a command line's start-up: a bad value prints
    `error: <one line naming the variable>` on stderr and exits 1 (bad input), with no
    traceback."""
    try:
        return Settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def variable_of(field: str) -> str:
    """The environment variable that sets `field` (a field name or an alias)."""
    info = Settings.model_fields.get(field)
    if info is None:
        return field  # already the variable (an alias), or not a field at all
    alias = info.validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def _plain(error: Any) -> str:
    """pydantic's error in the words of this project's messages, with the value given."""
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "greater_than_equal":
        words = "must not be negative" if ctx["ge"] == 0 else f"must be at least {ctx['ge']}"
    elif kind == "greater_than":
        words = "must be positive" if ctx["gt"] == 0 else f"must be greater than {ctx['gt']}"
    elif kind == "less_than_equal":
        words = f"must be at most {ctx['le']}"
    elif kind in ("int_parsing", "int_from_float", "int_type"):
        words = "must be an integer"
    elif kind in ("float_parsing", "float_type"):
        words = "must be a number"
    elif kind in ("bool_parsing", "bool_type"):
        words = "must be true or false"
    elif kind == "literal_error":
        words = "must be " + str(ctx["expected"]).replace("'", "")
    else:
        words = error["msg"]
    return f"{words}, got {given!r}"


def describe(exc: ValidationError) -> str:
    """One line naming each offending variable and what is wrong with its value."""
    parts = []
    for error in exc.errors():
        where = error["loc"][0] if error["loc"] else None
        words = _plain(error)
        parts.append(f"{variable_of(str(where))}: {words}" if where is not None else words)
    return "; ".join(parts)
