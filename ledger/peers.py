"""Where a mirroring node fetches public batches from — trusted for nothing.

A peer is another node's API (`HttpPeer`) or an archive file another node wrote
(`ArchivePeer`, made by `write_archive`): one line per anchored batch, each line the
batch's JSON document (`ledger.public_records`). Either may withhold, add or forge
records; `ledger.public_records.check_batch` decides what is accepted, against the chain.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import httpx
from sqlalchemy import select

from .anchoring import ANCHORED
from .config import MAX_BATCH_RECORDS
from .json_shape import MAX_PARSED_PER_BYTE, RECORD_PARSE_SLACK, encoding_problem, json_shape, parsed_bytes_bound
from .ports import Node
from .public_records import encode_batch, encode_direct
from .store.models import AttestationRow, BatchRow

# A served document larger than this is refused before it is parsed: a hostile peer or
# file must not exhaust this node's memory (a batch of 4,096 productions is about 4 MiB).
MAX_DOCUMENT_BYTES = 256 * 2**20
# Nor nested deeper than this: the parser recurses per level, and past some tens of
# thousands (py_ecc raises the recursion limit to 100,000) it overflows the C stack and
# kills the process. A record ingest accepted sits at most 64 levels deep in its
# submission (the API's limit); a document wraps it in five.
MAX_DOCUMENT_DEPTH = 128
# Nor one that would take more memory to parse than this many times its size, plus an
# allowance per record the chain says it holds. The byte cap alone does not bound
# memory: an empty array is 3 bytes on the wire and 64 once parsed, so a 256 MiB
# document of them would hold over 5 GiB, per forked worker. Real batches parse to
# under 4 times their size. Ingest keeps every record it accepts within this (see
# `ledger.ingest.density_problem`): a document the chain anchors is never refused for its
# shape, or one signer could stall every node's completeness. The records counted are
# at most MAX_BATCH_RECORDS, whatever count the anchorer put on chain: no node seals more.
PARSED_ALLOWANCE_PER_RECORD = RECORD_PARSE_SLACK + 4 * 2**10


class PeerUnavailable(Exception):
    """A peer could not be asked (unreachable, answered an error, or not readable)."""


class Peer(Protocol):
    """Somewhere public batch documents can be fetched from."""

    name: str

    def batch(self, index: int, records: int) -> object:
        """The parsed JSON document of batch `index`, which the chain says holds `records`
        attestations (that bounds what parsing it may cost); PeerUnavailable when it
        cannot say."""
        ...

    def direct(self, uid: str) -> object:
        """The parsed JSON document of the directly recorded attestation `uid`."""
        ...

    def for_worker(self) -> Peer:
        """The same peer with its own connection or file handle, for a forked process."""
        ...


@dataclass
class HttpPeer:
    """Another node's API: `GET {base_url}/v1/ledger/batches/{index}`."""

    base_url: str
    timeout: float = 30.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.base_url
        # No compression: httpx decodes every encoding an answer declares, a network chunk
        # at a time, and `gzip, gzip, gzip` turns a few hundred bytes into gigabytes in
        # one chunk, before any cap is looked at. The raw bytes are read and counted.
        self._client = httpx.Client(timeout=self.timeout, headers={"Accept-Encoding": "identity"})

    def batch(self, index: int, records: int) -> object:
        return self._get(f"batches/{index}", f"batch {index}", records)

    def direct(self, uid: str) -> object:
        return self._get(f"direct/{uid}", f"direct record {uid}", 1)

    def _get(self, path: str, what: str, records: int) -> object:
        body = bytearray()
        try:
            with self._client.stream("GET", f"{self.base_url.rstrip('/')}/v1/ledger/{path}") as response:
                if response.status_code != 200:
                    raise PeerUnavailable(f"{self.name}: {what} answered {response.status_code}")
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise PeerUnavailable(f"{self.name}: {what}: compressed ({encoding}) though identity was asked")
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise PeerUnavailable(f"{self.name}: {what}: larger than {MAX_DOCUMENT_BYTES:,} bytes")
        except httpx.HTTPError as exc:
            raise PeerUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return _parsed(body, f"{self.name}: {what}", records)

    def for_worker(self) -> HttpPeer:
        return HttpPeer(self.base_url, self.timeout, self.name)


# The start of each line `encode_batch` or `encode_direct` writes; only the batch index or
# the uid is read from it when the archive is opened (the rest is checked like any
# peer's answer).
_LINE_KEY = re.compile(rb'^\{"format": "[^"]*", (?:"index": (\d{1,19})|"direct": "(0x[0-9a-f]{64})"),')


@dataclass
class ArchivePeer:
    """An archive file: where each batch's line starts is read once, when opened."""

    path: Path
    name: str = ""
    _offsets: dict[int | str, int] = field(default_factory=dict, repr=False)  # batch index or uid -> offset
    _file: BinaryIO | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"archive {self.path}"
        if not self._offsets:
            try:
                with open(self.path, "rb") as f:
                    offset = 0
                    for line in iter(lambda: f.readline(MAX_DOCUMENT_BYTES + 1), b""):
                        found = _LINE_KEY.match(line)
                        if found is not None:
                            index, uid = found.groups()
                            key = int(index) if index is not None else uid.decode()
                            self._offsets.setdefault(key, offset)
                        offset += len(line)
            except OSError as exc:
                raise PeerUnavailable(f"{self.name}: {exc.strerror or exc}") from exc
            if not self._offsets:
                raise PeerUnavailable(
                    f"{self.name}: no public batch in it (not a file written by `provenance archive`; "
                    "an auditor's `audit export` is another format)"
                )

    def batch(self, index: int, records: int) -> object:
        return self._line(index, f"batch {index}", records)

    def direct(self, uid: str) -> object:
        return self._line(uid.lower(), f"direct record {uid}", 1)

    def _line(self, key: int | str, what: str, records: int) -> object:
        offset = self._offsets.get(key)
        if offset is None:
            raise PeerUnavailable(f"{self.name}: holds no {what}")
        try:
            if self._file is None:
                self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across batches
            self._file.seek(offset)
            line = self._file.readline(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise PeerUnavailable(f"{self.name}: {exc.strerror or exc}") from exc
        if len(line) > MAX_DOCUMENT_BYTES:
            raise PeerUnavailable(f"{self.name}: {what}: larger than {MAX_DOCUMENT_BYTES:,} bytes")
        return _parsed(line, f"{self.name}: {what}", records)

    def for_worker(self) -> ArchivePeer:
        return ArchivePeer(self.path, self.name, dict(self._offsets))


def write_archive(ledger: Node, path: Path, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Write every anchored batch this node holds to `path`, in chain order, one line
    each, then every attestation it holds that was recorded directly at the contract;
    returns (batches, direct records). Written beside `path` and renamed over it once
    complete, so a reader never sees half an archive."""
    with ledger.sessions() as session:
        indexes = list(
            session.scalars(
                select(BatchRow.chain_index)
                .where(BatchRow.status == ANCHORED, BatchRow.chain_index.isnot(None))
                .order_by(BatchRow.chain_index)
            )
        )
        direct = list(
            session.scalars(
                select(AttestationRow.uid).where(AttestationRow.direct_tx.isnot(None)).order_by(AttestationRow.id)
            )
        )
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        for done, index in enumerate(indexes, start=1):
            with ledger.sessions() as session:
                document = encode_batch(session, index, ledger.domain)
            if document is not None:
                out.write(document + b"\n")
            if progress is not None:
                progress(done, len(indexes))
        with ledger.sessions() as session:
            for uid in direct:
                document = encode_direct(session, uid, ledger.domain)
                if document is not None:
                    out.write(document + b"\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return len(indexes), len(direct)


def _parsed(body: bytes | bytearray, what: str, records: int) -> object:
    """`body` parsed — unless it is not UTF-8 (its shape could not be measured), or
    parsing it could crash this process (too deep) or hold far more memory than its size
    (too dense): PeerUnavailable then, before parsing."""
    encoding = encoding_problem(body)
    if encoding is not None:
        raise PeerUnavailable(f"{what}: not JSON this node reads ({encoding})")
    shape = json_shape(body, MAX_DOCUMENT_DEPTH)
    if shape.depth > MAX_DOCUMENT_DEPTH:
        raise PeerUnavailable(f"{what}: not JSON this node reads (nested deeper than {MAX_DOCUMENT_DEPTH} levels)")
    bound = parsed_bytes_bound(len(body), shape)
    allowance = MAX_PARSED_PER_BYTE * len(body) + PARSED_ALLOWANCE_PER_RECORD * min(records, MAX_BATCH_RECORDS)
    if bound > allowance:
        raise PeerUnavailable(
            f"{what}: not JSON this node reads ({shape.values:,} values and {shape.containers:,} arrays/objects "
            f"in {len(body):,} bytes could take {bound / 2**20:,.0f} MiB to parse; "
            f"at most {allowance / 2**20:,.0f} MiB)"
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PeerUnavailable(f"{what}: not JSON ({exc})") from exc
