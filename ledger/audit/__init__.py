"""Auditor replay: rebuild the ledger's history from the chain and re-verify every record,
trusting neither the operator's database nor its API.

The chain is the reference: registry events rebuild who held which role when; ledger
events rebuild the batch sequence (`chain`). The attestation data — the store, or an
exported archive (`sources`) — is then streamed batch by batch, only one batch in memory
at a time, and every record is re-checked (`checks`): its UID, its signature, its payload
commitment, its attester's standing at signing time, and that its batch's root is the
one on chain. `replay` runs them in that order; `report` says what was found.

Discrepancy kinds (stable, like reason codes):
- PAYLOAD_ALTERED: a record's fields no longer match what was signed
- ANCHORED_UID_WITHOUT_DATA: a batch on chain holds more UIDs than the data has
- BATCH_ROOT_MISMATCH: the data of a batch does not rebuild the root on chain (or the
  store's batch row disagrees with the chain)
- UNANCHORED_TOO_LONG: an acknowledged record left unanchored beyond the limit
- KEY_NOT_VALID_AT_SIGNING: the signer did not hold the needed role when it signed
- NOT_SEEN_ON_CHAIN: a record in a batch the chain has never anchored, or in none
- REGISTRY_MIRROR_ALTERED: the store's copy of the registry differs from the chain through
  the block its indexer says it has reached (a copy merely behind is stated, not reported)
- SEQUENCE_BROKEN: the chain's batch sequence has a gap or a broken hash link
- REORGANISED: a batch an earlier replay accepted is no longer on chain as it was read
"""

from .chain import ChainBatch, ReplayState, replay_deployment
from .replay import replay
from .report import Discrepancy, Progress, ReplayReport, describe_deployment, html_report
from .sources import ARCHIVE_FORMAT, DataRecord, StoreFacts, archive_source, export_archive, store_facts, store_source

__all__ = [
    "ARCHIVE_FORMAT",
    "ChainBatch",
    "DataRecord",
    "Discrepancy",
    "Progress",
    "ReplayReport",
    "ReplayState",
    "StoreFacts",
    "archive_source",
    "describe_deployment",
    "export_archive",
    "html_report",
    "replay",
    "replay_deployment",
    "store_facts",
    "store_source",
]
