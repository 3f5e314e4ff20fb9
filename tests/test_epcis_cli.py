"""`provenance epcis` as a user runs it: the installed command in its own process, against
a real anvil deployment and a real store (SQLite and PostgreSQL). Exit codes as
documented in `ledger/cli/epcis.py`: 0 done, 1 bad input or refused (nothing stored),
2 unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.chain.anvil import free_port
from ledger.core import Ledger

from .scenario import actor
from .test_epcis import EXPORTER_PGLN, MAKER_PGLN, commission_lot, document, event, ship_lot, valid_epcis

PROVENANCE = str(Path(sys.executable).parent / "provenance")
CONTEXT_YAML = f"""
parties:
  {MAKER_PGLN}: {{address: "{actor("maker").address}", country: DE}}
  {EXPORTER_PGLN}: {{address: "{actor("exporter").address}", country: DE}}
goodsClasses:
  "urn:epc:idpat:sgtin:4012345.012345.*": "090111"
"""
MAKER_KEY = "3"  # anvil's account 3, the accredited maker of tests/conftest.py


def provenance(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed command as a user would (a clean environment but for `env`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    return subprocess.run(
        [PROVENANCE, *args], env=clean | env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


@pytest.fixture
def node(ledger_env: Ledger, tmp_path: Path) -> dict[str, str]:
    """The environment of a user on this node: its state directory (with the deployment
    manifest), database and chain."""
    ledger_env.deployment.manifest.save(tmp_path / "deployment.json")
    return {
        "PROVENANCE_HOME": str(tmp_path),
        "PROVENANCE_DATABASE_URL": ledger_env.settings.resolved_database_url,
        "PROVENANCE_RPC_URL": ledger_env.settings.resolved_rpc_url,
        "PROVENANCE_CONFIRMATIONS": "1",
    }


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=1) if not isinstance(doc, str) else doc)
    return path


@pytest.mark.long
def test_a_missing_manifest_says_where_it_looked_and_what_to_set(tmp_path: Path) -> None:
    doc = write(tmp_path / "doc.json", document(commission_lot()))
    elsewhere = tmp_path / "elsewhere"
    env = {"PROVENANCE_HOME": str(elsewhere)}
    for args in (("epcis", "import", str(doc), "--dev-key", MAKER_KEY), ("epcis", "export", "--lot", "LOT-1")):
        result = provenance(env, *args, cwd=tmp_path)
        no_traceback(result)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"no deployment manifest at {elsewhere / 'deployment.json'}" in line
        assert "PROVENANCE_HOME" in line and "PROVENANCE_MANIFEST" in line


def test_a_malformed_document_names_its_file_line_and_column(tmp_path: Path) -> None:
    doc = write(tmp_path / "doc.json", '{"type": "EPCISDocument",\n "schemaVersion": }\n')
    result = provenance({"PROVENANCE_HOME": str(tmp_path)}, "epcis", "import", str(doc), "--dev-key", "3", cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1
    assert f"{doc}:2:19: not valid JSON" in result.stderr
    missing = provenance(
        {"PROVENANCE_HOME": str(tmp_path)}, "epcis", "import", str(tmp_path / "nope.json"), cwd=tmp_path
    )
    no_traceback(missing)
    assert missing.returncode == 1 and "nope.json" in missing.stderr


@pytest.mark.long
def test_import_stores_once_refuses_with_reasons_and_exports_valid_epcis(
    node: dict[str, str], ledger_env: Ledger, tmp_path: Path
) -> None:
    context = write(tmp_path / "context.yaml", CONTEXT_YAML)
    doc = write(tmp_path / "maker.json", document(commission_lot(), ship_lot(EXPORTER_PGLN, 400)))
    args = ("epcis", "import", str(doc), "--context", str(context), "--dev-key", MAKER_KEY)

    first = provenance(node, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "stored 2 attestations; 0 events already recorded"
    assert ledger_env.counts()["attestations"] == 2

    again = provenance(node, *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "stored 0 attestations; 2 events already recorded"
    assert ledger_env.counts()["attestations"] == 2

    # A wrong check digit (…457 where GS1's digit is 6) refuses the document, naming the event.
    bad = commission_lot()
    bad["eventID"] = "urn:uuid:bad-digit"
    bad["quantityList"] = [{"epcClass": "https://id.gs1.org/01/04012345123457/10/998877", "quantity": 5}]
    good = event("ObjectEvent", "urn:uuid:fine", action="OBSERVE", bizStep="inspecting", epcList=[
        "urn:epc:id:sgtin:4012345.012345.1"
    ])  # fmt: skip
    refused = provenance(
        node, "epcis", "import", str(write(tmp_path / "bad.json", document(good, bad))), "--context", str(context),
        "--dev-key", MAKER_KEY, cwd=tmp_path,
    )  # fmt: skip
    no_traceback(refused)
    assert refused.returncode == 1
    assert "urn:uuid:bad-digit" in refused.stderr and "check digit" in refused.stderr
    assert "nothing stored" in refused.stderr
    assert ledger_env.counts()["attestations"] == 2  # the good event was not stored either

    # An event that claims goods ceased to exist has no mapping: refused by its eventID.
    gone = event("ObjectEvent", "urn:uuid:gone", action="DELETE", bizStep="destroying", epcList=[
        "urn:epc:id:sgtin:4012345.012345.1"
    ])  # fmt: skip
    unmapped = provenance(
        node, "epcis", "import", str(write(tmp_path / "gone.json", document(gone))), "--dev-key", MAKER_KEY,
        cwd=tmp_path,
    )  # fmt: skip
    no_traceback(unmapped)
    assert unmapped.returncode == 1 and "urn:uuid:gone" in unmapped.stderr and "no mapping" in unmapped.stderr

    out = tmp_path / "lot.epcis.json"
    exported = provenance(node, "epcis", "export", "--lot", "urn:epc:class:lgtin:4012345.012345.998877",
                          "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    written = json.loads(out.read_text())
    valid_epcis(written)
    assert [e["eventID"] for e in written["epcisBody"]["eventList"]] == [
        e["eventID"] for e in json.loads(doc.read_text())["epcisBody"]["eventList"]
    ]
    assert all(e["prov:attestations"][0]["uid"].startswith("0x") for e in written["epcisBody"]["eventList"])


@pytest.mark.long
def test_export_refuses_bad_input_with_one_line(node: dict[str, str], tmp_path: Path) -> None:
    both = provenance(node, "epcis", "export", "--lot", "A", "--shipment", "0x" + "11" * 32, cwd=tmp_path)
    assert both.returncode == 1 and "exactly one of --lot or --shipment" in both.stderr
    short = provenance(node, "epcis", "export", "--shipment", "0x1234", cwd=tmp_path)
    assert short.returncode == 1 and "0x followed by 64 hex digits" in short.stderr
    unknown = provenance(node, "epcis", "export", "--shipment", "0x" + "11" * 32, cwd=tmp_path)
    assert unknown.returncode == 1 and "nothing recorded on this ledger" in unknown.stderr
    for result in (both, short, unknown):
        no_traceback(result)
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_chain_exits_2_and_stores_nothing(
    node: dict[str, str], ledger_env: Ledger, tmp_path: Path
) -> None:
    # Signing needs the chain (a dev key proves it is one; the store checks roles on it).
    # Export reads only the store (anchoring included), so it needs no chain.
    doc = write(tmp_path / "doc.json", document(commission_lot()))
    down = node | {"PROVENANCE_RPC_URL": f"http://127.0.0.1:{free_port()}"}
    result = provenance(down, "epcis", "import", str(doc), "--dev-key", MAKER_KEY, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ledger_env.counts()["attestations"] == 0
