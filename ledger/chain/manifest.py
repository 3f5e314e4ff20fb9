"""The deployment manifest: where the contracts are and where their history starts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Manifest:
    """A deployment of the registry and the ledger on one chain.

    `deployment_block` is where an auditor's replay starts; `abi_hash` identifies the
    ABI the contracts were deployed with (see `ledger.contracts.abi_hash`).
    """

    chain_id: int
    registry: str
    ledger: str
    deployment_block: int
    abi_hash: str
    registrar: str
    anchorer: str
    max_signature_age: int
    deployed_at: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise FileNotFoundError(f"no deployment manifest at {path}: run `provenance deploy`") from exc
        return cls(**data)
