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
from .ports import Node
from .public_records import encode_batch
from .store.models import BatchRow


class PeerUnavailable(Exception):
    """A peer could not be asked (unreachable, answered an error, or not readable)."""


class Peer(Protocol):
    """Somewhere public batch documents can be fetched from."""

    name: str

    def batch(self, index: int) -> object:
        """The parsed JSON document of batch `index`; PeerUnavailable when it cannot say."""
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
        self._client = httpx.Client(timeout=self.timeout)

    def batch(self, index: int) -> object:
        try:
            response = self._client.get(f"{self.base_url.rstrip('/')}/v1/ledger/batches/{index}")
        except httpx.HTTPError as exc:
            raise PeerUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise PeerUnavailable(f"{self.name}: batch {index} answered {response.status_code}")
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise PeerUnavailable(f"{self.name}: batch {index}: not JSON ({exc})") from exc

    def for_worker(self) -> HttpPeer:
        return HttpPeer(self.base_url, self.timeout, self.name)


# The start of each line `encode_batch` writes; only the batch index is read from it
# when the archive is opened (the rest is checked like any peer's answer).
_LINE_INDEX = re.compile(rb'^\{"format": "[^"]*", "index": (\d{1,19}),')


@dataclass
class ArchivePeer:
    """An archive file: where each batch's line starts is read once, when opened."""

    path: Path
    name: str = ""
    _offsets: dict[int, int] = field(default_factory=dict, repr=False)
    _file: BinaryIO | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"archive {self.path}"
        if not self._offsets:
            try:
                with open(self.path, "rb") as f:
                    offset = 0
                    for line in f:
                        found = _LINE_INDEX.match(line)
                        if found is not None:
                            self._offsets.setdefault(int(found.group(1)), offset)
                        offset += len(line)
            except OSError as exc:
                raise PeerUnavailable(f"{self.name}: {exc.strerror or exc}") from exc
            if not self._offsets:
                raise PeerUnavailable(
                    f"{self.name}: no public batch in it (not a file written by `provenance archive`; "
                    "an auditor's `audit export` is another format)"
                )

    def batch(self, index: int) -> object:
        offset = self._offsets.get(index)
        if offset is None:
            raise PeerUnavailable(f"{self.name}: holds no batch {index}")
        try:
            if self._file is None:
                self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across batches
            self._file.seek(offset)
            line = self._file.readline()
        except OSError as exc:
            raise PeerUnavailable(f"{self.name}: {exc.strerror or exc}") from exc
        try:
            return json.loads(line)
        except ValueError as exc:
            raise PeerUnavailable(f"{self.name}: batch {index}: not JSON ({exc})") from exc

    @property
    def batches(self) -> int:
        return len(self._offsets)

    def for_worker(self) -> ArchivePeer:
        return ArchivePeer(self.path, self.name, dict(self._offsets))


def write_archive(ledger: Node, path: Path, progress: Callable[[int, int], None] | None = None) -> int:
    """Write every anchored batch this node holds to `path`, in chain order, one line
    each; returns how many. Written beside `path` and renamed over it once complete, so
    a reader never sees half an archive."""
    with ledger.sessions() as session:
        indexes = list(
            session.scalars(
                select(BatchRow.chain_index)
                .where(BatchRow.status == ANCHORED, BatchRow.chain_index.isnot(None))
                .order_by(BatchRow.chain_index)
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
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return len(indexes)
