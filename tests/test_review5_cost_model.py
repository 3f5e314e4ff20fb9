"""Review 5 findings on the mirroring parse bound (ledger/json_shape.py, ledger/peers.py)
and the ingest density rule (ledger/ingest.py density_problem). Plain failing tests:
each names a hole the changes under review leave open.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger import peers
from ledger.core import Ledger
from ledger.ingest import Rejected, density_problem
from ledger.json_shape import json_shape
from ledger.payload import Disclosure
from ledger.peers import ArchivePeer, HttpPeer, PeerUnavailable
from ledger.public_records import _document, stored_records
from ledger.store.models import AttestationRow

from .test_ingest import production

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def _serving(body: bytes) -> Iterator[HttpPeer]:
    """A hostile HTTP peer that answers every request with `body`."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield HttpPeer(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


# One non-ASCII character whose UTF-16 code unit holds the byte 0x22 ('"'): U+0122.
_DESYNC = "\u0122"


def test_a_utf16_document_cannot_hide_its_density_from_the_shape_count() -> None:
    """A hostile mirroring peer serves the batch document in UTF-16 (json.loads, given
    bytes, detects UTF-16/32 from the first four bytes and decodes it: any peer may).
    json_shape counts raw bytes: the string "\\u0122" is the bytes 22 01 in UTF-16-LE, so
    its 0x22 byte reads as a closing quote and everything after it as inside a string.
    The document of 40,000 nested one-key objects is measured as one value and one
    array (bound = its size), passes the 8x-plus-64-KiB rule for a one-record batch, and
    is parsed: about 17 times its size held (25 MiB for 1.4 MiB; at the 256 MiB byte cap
    over 4 GiB per worker, the very exhaustion change 1 exists to stop). The document
    must be refused unparsed (or its shape measured on what json.loads will decode)."""
    one = '{"":{"":{"":{}}}}'
    text = f'["{_DESYNC}",' + ",".join([one] * 40_000) + "]"
    body = text.encode("utf-16-le")
    assert json_shape(text.encode()).containers > 150_000  # what the UTF-8 form says it holds
    kept: object = None
    with _serving(body) as hostile:
        tracemalloc.start()
        try:
            try:
                kept = hostile.batch(0, 1)
                refused = False
            except PeerUnavailable:
                refused = True
            current, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    del kept  # held until measured
    assert refused, f"parsed and kept {current / len(body):.1f} times the {len(body):,}-byte document's size"


def test_a_utf16_document_nested_deep_cannot_crash_the_mirroring_process() -> None:
    """The same encoding trick defeats MAX_DOCUMENT_DEPTH: json_shape sees depth 1 in a
    UTF-16 document nested 200,000 deep (800 KB), json.loads recurses once per level,
    and with py_ecc's recursion limit of 100,000 the C stack overflows: SIGSEGV. In a
    forked worker that is a 'dead worker', whose batch the parent then fetches and
    parses itself, and dies too: any listed peer (or archive) kills the node's mirror
    (or `serve`, when it follows). The same blindness sits in api/limits.py's 64-level
    and 150,000-value checks: FastAPI parses request bodies with json.loads(bytes) too,
    before any authentication runs. Run in a child process."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import ledger.signatures  # py_ecc comes in with it, as in every node process
        from ledger import peers
        depth = 200_000
        body = ('["{_DESYNC}",' + "[" * depth + "]" * depth + "]").encode("utf-16-le")
        try:
            peers._parsed(body, "batch 0", 1)
        except peers.PeerUnavailable:
            pass
        print("survived")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "survived" in done.stdout, (done.returncode, done.stderr[-500:])


def test_a_record_ingest_accepts_is_never_too_dense_for_a_mirror_to_read(ledger_env: Ledger) -> None:
    """Ingest measures a record's disclosed arrays in their canonical (RFC 8785) form,
    mirrors measure the served document, which `batch_rows`/`stored_records` write with
    json.dumps: the same float is 21 bytes canonically (1e20 is
    `100000000000000000000`) and 5 served (`1e+20`). A signer discloses 40 lists of 200
    such floats: 86 bytes of parse bound per 22 canonical bytes (well within 8x, so
    accepted), but 71 per 7 served bytes (over 8x by 15 bytes a value, 120 KB in all,
    past the 64 KiB a record is allowed). Recorded directly at the contract (a direct
    record is fetched as a one-record document) or in a batch with little else, every
    mirroring node refuses it unparsed, forever: one signer stalls every node's
    completeness. Ingest now measures the values as they are served, and refuses it."""
    ledger = ledger_env
    base = {"lot": "LOT-42", "quantity": 1000, "unit": "pcs", "goodsClass": "847130"}
    floats = production(ledger, fields={**base, "notes": [[1e20] * 200 for _ in range(40)]})
    assert density_problem(Disclosure.from_json(floats["payload"]), frozenset()) is not None
    with pytest.raises(Rejected, match="too dense"):
        ledger.ingest(floats)
    # The densest ordinary lists ingest accepts: readable by every mirror.
    classes = [[f"{840000 + 200 * i + j}" for j in range(200)] for i in range(10)]
    accepted = ledger.ingest(production(ledger, fields={**base, "notes": classes}))
    uid = accepted.uid
    with ledger.sessions() as session:
        [(_uid, record)] = list(stored_records(session, AttestationRow.uid == uid))
    # What a node serves for it as a direct record (encode_direct's document).
    document = _document({"direct": uid}, ledger.domain, record)
    try:
        peers._parsed(document, f"direct record {uid}", 1)
    except PeerUnavailable as exc:
        pytest.fail(f"a record this node accepted is unreadable to every mirror: {exc}")


def test_confidential_values_do_not_pay_for_the_density_of_the_public_ones(ledger_env: Ledger) -> None:
    """density_problem runs on every disclosed field, before the submission's
    `confidential` list is read, so fields that are then kept confidential (sealed at
    rest, never served to mirrors) count in the size that earns the 8x allowance. A
    signer discloses publicly the very field test_ingest refuses as too dense (100 lists
    of 200 empty arrays: 60 KB, 2.6 MB to parse) and two confidential lists of 200
    1,000-character strings (400 KB, sparse): accepted. Mirrors are served only the
    public part, 80 KB that would take 2.6 MB to parse against an allowance of about
    0.7 MB, and refuse it unparsed: the one record stalls every node's completeness.
    Ingest now measures only the public values, and refuses it."""
    ledger = ledger_env
    padding = ["x" * 1_000] * 200
    fields = {
        "lot": "LOT-42",
        "quantity": 1000,
        "unit": "pcs",
        "goodsClass": "847130",
        "notes": [[[]] * 200] * 100,
        "pad1": padding,
        "pad2": padding,
    }
    with pytest.raises(Rejected, match="too dense"):  # measured on what is served: the public part
        ledger.ingest(production(ledger, fields=fields, confidential=["pad1", "pad2"]))
    # The confidential lists alone are accepted, and what mirrors are served holds none of them.
    del fields["notes"]
    uid = ledger.ingest(production(ledger, fields=fields, confidential=["pad1", "pad2"])).uid
    with ledger.sessions() as session:
        [(_uid, record)] = list(stored_records(session, AttestationRow.uid == uid))
    assert "x" * 1_000 not in record
    peers._parsed(_document({"direct": uid}, ledger.domain, record), f"direct record {uid}", 1)


def test_the_chains_count_cannot_lift_the_density_bound(tmp_path: Path) -> None:
    """The per-record allowance (64 KiB) is multiplied by the count the chain says the
    batch holds, and that count is whatever the anchorer passed to anchorBatch: a
    uint32, so up to 4,294,967,295, and nothing caps it before the document is parsed.
    A federation member (its anchoring account accredited, its node a mirroring peer)
    anchors a batch with that count and serves a document of empty arrays: the
    allowance is 256 TiB, the density rule is void, and a 256 MiB document parses to
    over 5 GiB in every mirroring node's workers (the batch is refused for its count
    only after parsing). Scaled down to 4 MiB here, as in test_mirror_review. The
    allowance should count no more records than the document could hold (a served
    record is hundreds of bytes) or than a batch may hold."""
    archive = tmp_path / "wide.archive"
    opening = b'{"format": "provenance-public-batch/2", "index": 0, "records": ['
    archive.write_bytes(opening + b"[]," * 1_400_000 + b"[]]}\n")
    served = ArchivePeer(archive)
    with pytest.raises(PeerUnavailable):
        served.batch(0, 1)  # refused for one record, as test_mirror_review shows
    with pytest.raises(PeerUnavailable, match="to parse"):
        served.batch(0, 2**32 - 1)
