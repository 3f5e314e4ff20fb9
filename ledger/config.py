"""One settings object, read from environment variables (documented in the README)."""

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
    # Shared store for the HTTP rate limits (redis://host:port/db); unset: kept in-process.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("PROVENANCE_REDIS_URL") or None)

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
    def chain_state_file(self) -> Path:
        return self.home / "chain" / "anvil-state.json"
