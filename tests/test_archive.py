"""The public ledger's wire format and archive files.

A new node can catch up from a file another node wrote (`provenance archive`) instead of
that node's API. The file is trusted no more than a peer: every batch in it is checked
against the chain, a line edited to forge a record is reported and filled from another
peer, and the format's parser refuses records of the wrong shape before anything is
hashed.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger import peers
from ledger.completeness import CompletenessMonitor
from ledger.core import Ledger
from ledger.json_shape import MAX_PARSED_PER_BYTE, json_shape, parsed_bytes_bound
from ledger.mirror import mirror
from ledger.peers import ArchivePeer, PeerUnavailable, write_archive
from ledger.public_records import FORMAT, check_batch, decode_record
from ledger.verify import Verdict

from .conftest import REPO, ReliabilityRecorder
from .scenario import Story
from .test_api import Server
from .test_federation import node_a, node_b, peer, second_database_url  # noqa: F401 - fixtures


def archived_clean_export(a: Ledger, tmp_path: Path) -> Path:
    """A clean export told at node `a`, anchored and written to an archive file: its path."""
    Story(a).clean_export()
    Story(a).anchor()
    archive = tmp_path / "ledger.archive"
    write_archive(a, archive)
    return archive


def _lines(path: Path) -> list[dict[str, Any]]:
    return [cast("dict[str, Any]", json.loads(line)) for line in path.read_bytes().splitlines()]


def test_a_new_node_catches_up_from_an_archive_file_and_verifies_as_the_writer_does(
    node_a: tuple[Ledger, Server],  # noqa: F811 - the fixture imported above
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    a, _ = node_a
    b, _ = node_b
    ids = Story(a).clean_export()
    Story(a).anchor()
    archive = tmp_path / "ledger.archive"
    assert write_archive(a, archive) >= (1, 0)
    assert not (tmp_path / "ledger.archive.partial").exists()
    documents = _lines(archive)
    assert {d["format"] for d in documents} == {FORMAT}
    assert [d["index"] for d in documents] == sorted(d["index"] for d in documents)
    # Real documents are far from the density a reader refuses (its allowance per record aside).
    for line in archive.read_bytes().splitlines():
        assert parsed_bytes_bound(len(line), json_shape(line)) <= MAX_PARSED_PER_BYTE / 2 * len(line)

    report = mirror(b, [ArchivePeer(archive)], jobs=2)
    assert (report.gaps, report.problems) == ([], [])
    assert report.records_stored == sum(len(d["records"]) for d in documents)
    bundle = a.export_bundle(ids["shipment"])
    assert a.verify_bundle(bundle).verdict is Verdict.VERIFIED
    assert b.verify_bundle(bundle).verdict is Verdict.VERIFIED
    assert b.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED  # by id: B holds the records


def test_an_archive_line_edited_to_forge_a_record_is_refused_and_another_peer_fills_it(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
    reliability: ReliabilityRecorder,
) -> None:
    a, a_server = node_a
    b, _ = node_b
    archive = archived_clean_export(a, tmp_path)
    documents = _lines(archive)
    forged = 0
    for document in documents:
        for record in document["records"]:
            fields = record[-1]
            if "quantity" in fields:
                fields["quantity"]["value"] = 10**6  # more goods than were declared
                forged += 1
    assert forged, "the story must have a production with a disclosed quantity"
    archive.write_text("".join(json.dumps(d) + "\n" for d in documents))

    refused = mirror(b, [ArchivePeer(archive)])
    assert refused.records_stored == 0 and refused.gaps
    assert {p.what for p in refused.problems} == {"FORGED"}
    assert all("quantity" in p.detail for p in refused.problems)

    filled = mirror(b, [ArchivePeer(archive), peer(a_server)], jobs=2)
    assert filled.gaps == [] and filled.records_stored > 0
    assert {p.what for p in filled.problems} == {"FORGED"}
    reliability.record(
        "input",
        "archive file edited to raise a production's quantity",
        len(refused.problems),
        "batch refused as FORGED, nothing stored; the honest peer fills it",
    )


def test_an_archive_missing_a_batch_leaves_a_named_gap(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    a, _ = node_a
    b, _ = node_b
    for _ in range(2):  # two batches
        Story(a).clean_export()
        Story(a).anchor()
    archive = tmp_path / "ledger.archive"
    assert write_archive(a, archive)[0] >= 2
    lines = archive.read_bytes().splitlines(keepends=True)
    archive.write_bytes(b"".join(lines[1:]))  # the first batch dropped
    report = mirror(b, [ArchivePeer(archive)])
    assert 0 in report.gaps
    assert any(p.what == "UNREACHABLE" and p.batch == 0 and "holds no batch 0" in p.detail for p in report.problems)
    assert not b.completeness.watermark(b.chain_view.snapshot(max_age=0)).complete


def test_a_missing_or_foreign_archive_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PeerUnavailable, match="No such file"):
        ArchivePeer(tmp_path / "nowhere.archive")
    other = tmp_path / "audit.jsonl.gz"
    other.write_bytes(gzip.compress(b'{"format": "provenance-ledger/archive@1"}\n'))
    with pytest.raises(PeerUnavailable, match="not a file written by `provenance archive`"):
        ArchivePeer(other)


def test_the_archive_and_mirror_commands_round_trip(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    """`provenance archive FILE` on one node, `provenance mirror --archive FILE` on the
    other, as real processes with their own settings."""
    a, _ = node_a
    b, _ = node_b
    Story(a).clean_export()
    Story(a).anchor()
    manifest = a.deployment.manifest.save(tmp_path / "deployment.json")

    def run(ledger: Ledger, *args: str) -> subprocess.CompletedProcess[str]:
        env: dict[str, str] = {
            **os.environ,
            "PROVENANCE_HOME": str(ledger.settings.home),
            "PROVENANCE_DATABASE_URL": str(ledger.settings.database_url),
            "PROVENANCE_RPC_URL": str(ledger.settings.rpc_url),
            "PROVENANCE_MANIFEST": str(manifest),
            "PROVENANCE_CONFIRMATIONS": str(ledger.settings.confirmations),
        }
        return subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    archive = tmp_path / "exported.archive"
    written = run(a, "archive", str(archive))
    assert written.returncode == 0, written.stderr
    assert "wrote" in written.stdout and archive.exists()
    caught_up = run(b, "mirror", "--archive", str(archive))
    assert caught_up.returncode == 0, caught_up.stderr
    assert "records/s" in caught_up.stderr  # the progress line
    assert "complete through batch" in caught_up.stdout
    missing = run(b, "mirror", "--archive", str(tmp_path / "nowhere.archive"))
    assert missing.returncode == 1 and "nowhere.archive: No such file" in missing.stderr  # bad input


GOOD = [
    1,
    "0x" + "11" * 20,
    "0x" + "22" * 32,
    [],
    "0x" + "33" * 32,
    1,
    0,
    "0x" + "44" * 65,
    ["0x" + "55" * 32],
    {},
]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r[:-1], "array of 10"),
        (lambda r: [True, *r[1:]], "kind: expected an integer"),
        (lambda r: [999, *r[1:]], "999"),
        (lambda r: [r[0], "0x12", *r[2:]], "attester"),
        (lambda r: [*r[:3], "not a list", *r[4:]], "refs"),
        (lambda r: [*r[:5], 5, 4, *r[7:]], "expiresAt"),
        (lambda r: [*r[:7], "0x00", *r[8:]], "signature"),
        (lambda r: [*r[:8], [], r[9]], "fieldHashes"),
        (lambda r: [*r[:9], {"a b": {"value": 1, "salt": "0x" + "66" * 32}}], "field name"),
    ],
)
def test_a_record_of_the_wrong_shape_is_refused_by_name(change: Any, problem: str) -> None:
    decode_record(GOOD)  # the unchanged record parses
    with pytest.raises(ValueError, match=problem):
        decode_record(change(list(GOOD)))


def test_a_document_for_another_ledger_or_format_is_forged(ledger_env: Ledger) -> None:
    domain = ledger_env.domain
    assert check_batch(domain, ledger_env.checker, {"format": "provenance-public-batch/1"}, "0x", 1)[0] == "FORGED"
    other = {**domain.to_json(), "chainId": domain.chain_id + 1}
    document = {"format": FORMAT, "index": 0, "domain": other, "records": []}
    assert check_batch(domain, ledger_env.checker, document, "0x", 0) == (
        "FORGED",
        "the records are signed for another ledger",
    )


def test_a_document_larger_than_the_cap_is_refused_unread(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability: ReliabilityRecorder,
) -> None:
    """A hostile peer or file cannot make the node read an unbounded document (the cap
    is lowered here so that a real batch exceeds it)."""
    a, a_server = node_a
    b, _ = node_b
    archive = archived_clean_export(a, tmp_path)
    monkeypatch.setattr(peers, "MAX_DOCUMENT_BYTES", 512)
    report = mirror(b, [peer(a_server), ArchivePeer(archive)])
    assert report.records_stored == 0 and report.gaps
    assert {p.what for p in report.problems} == {"UNREACHABLE"}
    assert all("larger than 512 bytes" in p.detail for p in report.problems), report.problems
    assert {p.peer for p in report.problems} == {peer(a_server).name, f"archive {archive}"}
    reliability.record("input", "peer and archive serving a document over the size cap", 2, "refused unparsed")


def test_batches_a_mirror_checked_are_not_rebuilt_again_yet_a_row_deleted_later_opens_a_gap(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mirroring checked that each batch's records rebuild its on-chain root before it
    stored them, so measuring completeness right after does not rebuild every root again
    (at 1,000,000 records that was about 30 % of the storing process's CPU). A record a
    database administrator deletes afterwards still lowers the watermark."""
    a, _ = node_a
    b, _ = node_b
    archive = archived_clean_export(a, tmp_path)
    assert mirror(b, [ArchivePeer(archive)]).complete
    rebuilt: list[int] = []
    rebuilds = CompletenessMonitor._rebuilds

    def counted(session: Session, batch_id: int, root: str) -> bool:
        rebuilt.append(batch_id)
        return rebuilds(session, batch_id, root)

    monkeypatch.setattr(CompletenessMonitor, "_rebuilds", staticmethod(counted))
    measured = b.completeness.refresh(b.chain_view.snapshot(max_age=0))
    assert measured.complete and measured.through >= 0 and rebuilt == [], (measured.to_json(), rebuilt)
    with b.engine.begin() as conn:
        uid, index = conn.execute(
            text("SELECT a.uid, b.chain_index FROM attestations a JOIN batches b ON a.batch_id = b.id LIMIT 1")
        ).one()
        conn.execute(text("DELETE FROM attestations WHERE uid = :u"), {"u": uid})
    measured = b.completeness.refresh(b.chain_view.snapshot(max_age=0))
    assert not measured.complete and index in measured.gaps, measured.to_json()
