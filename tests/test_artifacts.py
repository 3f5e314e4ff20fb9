"""The ABI and bytecode shipped in the Python package match a fresh compile."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ledger.contracts import CONTRACT_NAMES, load_artifact

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from export_artifacts import CONTRACTS, shipped_form


@pytest.fixture(scope="module")
def fresh_compile() -> None:
    subprocess.run(["npx", "hardhat", "compile", "--quiet"], cwd=REPO, check=True, timeout=300)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_shipped_artifact_matches_fresh_compile(fresh_compile: None, name: str) -> None:
    fresh = shipped_form(name, CONTRACTS[name])
    shipped = load_artifact(name)
    assert shipped["abi"] == fresh["abi"], f"{name}: ABI is stale, run scripts/export_artifacts.py"
    assert shipped["bytecode"] == fresh["bytecode"], f"{name}: bytecode is stale, run scripts/export_artifacts.py"
    assert shipped["deployedBytecode"] == fresh["deployedBytecode"]


def test_shipped_artifacts_are_plain_json_inside_the_package() -> None:
    for name in CONTRACT_NAMES:
        path = REPO / "ledger" / "contracts" / f"{name}.json"
        data = json.loads(path.read_text())
        assert data["bytecode"].startswith("0x") and len(data["bytecode"]) > 100
