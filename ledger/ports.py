"""What the domain modules need of a node, as Protocols: evidence gathering, the
verification service, mirroring and the auditor take these instead of the concrete
`ledger.core.Ledger`, which composes them (and imports those modules) — so no import
runs backwards and no dependency hides behind `Any`.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from .anchors import AnchorRef, BatchFacts
from .chain.client import Deployment
from .chain.view import ChainView
from .completeness import CompletenessMonitor
from .config import Settings
from .eip712 import Domain
from .ingest import Ingestor
from .licence_output import LicenceOutputs
from .sealing import Sealer
from .signatures import SignatureChecker
from .store.models import BatchRow


class StoreReader(Protocol):
    """A store whose rows can be read back as evidence."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def sealer(self) -> Sealer: ...

    @property
    def domain(self) -> Domain: ...

    def anchor_from(
        self,
        uid: str,
        batch_id: int | None,
        direct_tx: str | None,
        batch: BatchRow | BatchFacts | None,
        *,
        proof: bool = True,
    ) -> AnchorRef: ...

    def batches_by_id(self, ids: set[int]) -> dict[int, BatchRow]: ...


class Node(StoreReader, Protocol):
    """A store together with the chain it mirrors and the policy it verifies under."""

    @property
    def settings(self) -> Settings: ...

    @property
    def deployment(self) -> Deployment: ...

    @property
    def chain_view(self) -> ChainView: ...

    @property
    def checker(self) -> SignatureChecker: ...

    @property
    def completeness(self) -> CompletenessMonitor: ...

    @property
    def ingestor(self) -> Ingestor: ...

    @property
    def licence_outputs(self) -> LicenceOutputs: ...
