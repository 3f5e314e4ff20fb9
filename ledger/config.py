"""One settings object, read from environment variables (documented in the README).

The only module that reads the environment: the service, the command line and the
tests receive a `Settings`; a bad value stops the start with the variable's name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _number(name: str, default: float, cast: type[int] | type[float]) -> float:
    """The environment variable `name` converted by `cast`, or `default` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {'an integer' if cast is int else 'a number'}, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    return int(_number(name, default, int))


def _float(name: str, default: float) -> float:
    return _number(name, default, float)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _checks(name: str) -> tuple[str, ...]:
    from ledger.verify.checks import CHECKS

    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return CHECKS
    return tuple(c.strip() for c in raw.split(",") if c.strip())


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Every field has a safe default for the embedded setup."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("PROVENANCE_HOME", "var")).resolve())
    rpc_url: str | None = field(default_factory=lambda: os.environ.get("PROVENANCE_RPC_URL") or None)
    database_url: str | None = field(default_factory=lambda: os.environ.get("PROVENANCE_DATABASE_URL") or None)
    manifest_path: Path | None = field(
        default_factory=lambda: Path(p) if (p := os.environ.get("PROVENANCE_MANIFEST")) else None
    )
    data_key_path: Path | None = field(
        default_factory=lambda: Path(p) if (p := os.environ.get("PROVENANCE_DATA_KEY_FILE")) else None
    )
    confirmations: int = field(default_factory=lambda: _int("PROVENANCE_CONFIRMATIONS", 2))
    batch_max_size: int = field(default_factory=lambda: _int("PROVENANCE_BATCH_MAX_SIZE", 4096))
    batch_max_age_seconds: float = field(default_factory=lambda: _float("PROVENANCE_BATCH_MAX_AGE", 5.0))
    anchor_keystore: Path | None = field(
        default_factory=lambda: Path(p) if (p := os.environ.get("PROVENANCE_ANCHOR_KEYSTORE")) else None
    )
    anvil_port: int = field(default_factory=lambda: _int("PROVENANCE_ANVIL_PORT", 8545))
    api_port: int = field(default_factory=lambda: _int("PROVENANCE_API_PORT", 8000))
    require_acceptance: bool = field(default_factory=lambda: _bool("PROVENANCE_REQUIRE_ACCEPTANCE", False))
    mandatory_checks: tuple[str, ...] = field(default_factory=lambda: _checks("PROVENANCE_MANDATORY_CHECKS"))
    completeness_interval: float = field(default_factory=lambda: _float("PROVENANCE_COMPLETENESS_INTERVAL", 5.0))
    peers: tuple[str, ...] = field(
        default_factory=lambda: tuple(p.strip() for p in os.environ.get("PROVENANCE_PEERS", "").split(",") if p.strip())
    )
    max_body_bytes: int = field(default_factory=lambda: _int("PROVENANCE_MAX_BODY_BYTES", 8 * 1024 * 1024))
    max_batch: int = field(default_factory=lambda: _int("PROVENANCE_MAX_BATCH", 500))
    rate_limit: str = field(default_factory=lambda: os.environ.get("PROVENANCE_RATE_LIMIT") or "500")
    auth_failure_limit: str = field(
        default_factory=lambda: os.environ.get("PROVENANCE_AUTH_FAILURE_LIMIT") or "20/minute"
    )
    rate_limit_prefix: str = field(
        default_factory=lambda: os.environ.get("PROVENANCE_RATE_LIMIT_PREFIX") or "provenance-ratelimit"
    )
    anvil_bin: Path | None = field(
        default_factory=lambda: Path(p) if (p := os.environ.get("PROVENANCE_ANVIL_BIN")) else None
    )
    # Secrets: never printed (repr=False).
    key_password: str | None = field(
        default_factory=lambda: os.environ.get("PROVENANCE_KEY_PASSWORD") or None, repr=False
    )
    api_key: str | None = field(default_factory=lambda: os.environ.get("PROVENANCE_API_KEY") or None, repr=False)
    # Shared store for the HTTP rate limits (redis://host:port/db); unset: kept in-process.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("PROVENANCE_REDIS_URL") or None)
    # The administration's customs key, which signs findings recorded from the console
    # (password from PROVENANCE_KEY_PASSWORD); unset: the dev customs key, dev chain only.
    customs_keystore: Path | None = field(
        default_factory=lambda: Path(p) if (p := os.environ.get("PROVENANCE_CUSTOMS_KEYSTORE")) else None
    )
    # The chain's JSON-RPC URL as the officers' browsers reach it (the console reads batch
    # roots there itself, not through this service); unset: the service's own rpc_url.
    public_rpc_url: str | None = field(default_factory=lambda: os.environ.get("PROVENANCE_PUBLIC_RPC_URL") or None)
    # EIP-1559 fees (ledger/chain/fees.py): the tip offered, the ceiling per gas above
    # which anchoring pauses with an alarm, the raise of a replacement, and how long a
    # transaction may wait unmined before it is replaced under the same nonce.
    max_fee_gwei: float = field(default_factory=lambda: _float("PROVENANCE_MAX_FEE_GWEI", 500.0))
    priority_fee_gwei: float = field(default_factory=lambda: _float("PROVENANCE_PRIORITY_FEE_GWEI", 1.0))
    fee_bump_percent: int = field(default_factory=lambda: _int("PROVENANCE_FEE_BUMP_PERCENT", 20))
    tx_stuck_seconds: float = field(default_factory=lambda: _float("PROVENANCE_TX_STUCK_SECONDS", 30.0))
    # How a batch counts as final: "depth" (PROVENANCE_CONFIRMATIONS blocks), or the
    # chain's own "safe" / "finalized" block tags (depth where the chain lacks them).
    confirmation_mode: str = field(default_factory=lambda: os.environ.get("PROVENANCE_CONFIRMATION_MODE") or "depth")
    # Several JSON-RPC endpoints of the same chain, tried in order (failover).
    rpc_urls: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            u.strip() for u in os.environ.get("PROVENANCE_RPC_URLS", "").split(",") if u.strip()
        )
    )

    def __post_init__(self) -> None:
        """Refuse a bad value at start-up, naming its variable."""
        from ledger.verify.checks import CHECKS

        if self.confirmations < 1:
            raise ValueError(f"PROVENANCE_CONFIRMATIONS must be at least 1, got {self.confirmations}")
        if self.batch_max_size < 1:
            raise ValueError(f"PROVENANCE_BATCH_MAX_SIZE must be at least 1, got {self.batch_max_size}")
        if self.batch_max_age_seconds < 0:
            raise ValueError(f"PROVENANCE_BATCH_MAX_AGE must not be negative, got {self.batch_max_age_seconds}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"PROVENANCE_MAX_BODY_BYTES must be at least 1024, got {self.max_body_bytes}")
        if self.max_batch < 1:
            raise ValueError(f"PROVENANCE_MAX_BATCH must be at least 1, got {self.max_batch}")
        if self.completeness_interval < 0:
            raise ValueError(f"PROVENANCE_COMPLETENESS_INTERVAL must not be negative, got {self.completeness_interval}")
        if self.public_rpc_url is not None and not self.public_rpc_url.startswith(("http://", "https://")):
            raise ValueError(f"PROVENANCE_PUBLIC_RPC_URL: {self.public_rpc_url!r} is not an http(s) URL")
        if self.max_fee_gwei <= 0:
            raise ValueError(f"PROVENANCE_MAX_FEE_GWEI must be positive, got {self.max_fee_gwei}")
        if self.priority_fee_gwei < 0:
            raise ValueError(f"PROVENANCE_PRIORITY_FEE_GWEI must not be negative, got {self.priority_fee_gwei}")
        if self.priority_fee_gwei > self.max_fee_gwei:
            raise ValueError(
                f"PROVENANCE_PRIORITY_FEE_GWEI ({self.priority_fee_gwei}) must not exceed "
                f"PROVENANCE_MAX_FEE_GWEI ({self.max_fee_gwei})"
            )
        if self.fee_bump_percent < 10:
            raise ValueError(
                f"PROVENANCE_FEE_BUMP_PERCENT must be at least 10 (nodes refuse smaller replacements), "
                f"got {self.fee_bump_percent}"
            )
        if self.tx_stuck_seconds <= 0:
            raise ValueError(f"PROVENANCE_TX_STUCK_SECONDS must be positive, got {self.tx_stuck_seconds}")
        if self.confirmation_mode not in ("depth", "safe", "finalized"):
            raise ValueError(
                f"PROVENANCE_CONFIRMATION_MODE must be depth, safe or finalized, got {self.confirmation_mode!r}"
            )
        for url in self.rpc_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"PROVENANCE_RPC_URLS: {url!r} is not an http(s) URL")
        for peer in self.peers:
            if not peer.startswith(("http://", "https://")):
                raise ValueError(f"PROVENANCE_PEERS: {peer!r} is not an http(s) URL")
        unknown = sorted(set(self.mandatory_checks) - set(CHECKS))
        if unknown:
            raise ValueError(f"PROVENANCE_MANDATORY_CHECKS: unknown checks {unknown}; known: {', '.join(CHECKS)}")

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
