"""Copy the compiled ABI and bytecode the Python core needs into the package.

Run after `npx hardhat compile` (the test command does both). The copies ship inside
the `ledger` package so that talking to a remote chain needs no Node.js; the test
`tests/test_artifacts.py` fails when they drift from a fresh compile.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "artifacts" / "contracts"
TARGET = ROOT / "ledger" / "contracts"
CONTRACTS = {
    "ParticipantRegistry": "ParticipantRegistry.sol",
    "ProvenanceLedger": "ProvenanceLedger.sol",
    "TestERC1271Wallet": "test/TestERC1271Wallet.sol",
    "TestGasBurnerWallet": "test/TestGasBurnerWallet.sol",
}


def shipped_form(name: str, source: str) -> dict[str, object]:
    """The subset of a Hardhat artifact that the package ships for `name`."""
    artifact = json.loads((BUILD / source / f"{name}.json").read_text())
    return {
        "contractName": artifact["contractName"],
        "sourceName": artifact["sourceName"],
        "abi": artifact["abi"],
        "bytecode": artifact["bytecode"],
        "deployedBytecode": artifact["deployedBytecode"],
    }


def main() -> int:
    if not BUILD.exists():
        print("build/artifacts missing: run `npx hardhat compile` first", file=sys.stderr)
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, source in CONTRACTS.items():
        out = TARGET / f"{name}.json"
        out.write_text(json.dumps(shipped_form(name, source), indent=1, sort_keys=True) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
