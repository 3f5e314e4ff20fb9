"""SQLAlchemy 2 models. The schema itself is created by the Alembic migrations in
`ledger/migrations`; `tests/test_migrations.py` checks the two agree.

Identifiers (UIDs, roots, hashes) are stored as `0x`-prefixed lowercase hex text: the
same form on SQLite and PostgreSQL, and greppable by an auditor.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class AttestationRow(Base):
    """An acknowledged attestation. Never updated except to assign its batch."""

    __tablename__ = "attestations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(66), unique=True, nullable=False)
    kind: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    attester: Mapped[str] = mapped_column(String(42), nullable=False, index=True)
    subject: Mapped[str] = mapped_column(String(66), nullable=False, index=True)
    payload_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    issued_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    signature: Mapped[str] = mapped_column(String(132), nullable=False)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    contract: Mapped[str] = mapped_column(String(42), nullable=False)
    field_hashes: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list
    disclosed: Mapped[str] = mapped_column(Text, nullable=False)  # JSON {name: {value, salt}}
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # AES-GCM confidential fields
    received_at: Mapped[float] = mapped_column(Float, nullable=False)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), nullable=True)
    direct_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)

    __table_args__ = (
        Index("ix_attestations_unbatched", "batch_id", "id"),
        Index("ix_attestations_exporter_history", "attester", "kind", "issued_at"),
        # "Records of kind K stored since row N" (the running views) is an index range.
        Index("ix_attestations_kind_id", "kind", "id"),
    )


class AttestationRefRow(Base):
    """One reference from an attestation to an earlier one (custody inputs, licences...)."""

    __tablename__ = "attestation_refs"

    uid: Mapped[str] = mapped_column(ForeignKey("attestations.uid"), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ref: Mapped[str] = mapped_column(String(66), nullable=False)
    # The referring record's kind, so "what of kind K refers to X" is an index range, not a
    # scan of everything referring to X (a licence is referred to by every production).
    kind: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)

    # Reads by `ref` alone use this index too; no index on `ref` alone, so the planner never
    # prefers one that cannot narrow by kind (PostgreSQL did, reading every reference to
    # a licence to keep the few that are not productions).
    __table_args__ = (Index("ix_attestation_refs_ref_kind", "ref", "kind"),)


class WatchlistClassRow(Base):
    """One goods class (HS code prefix) a watch-list entry covers: verification loads only
    the entries that can match a shipment's goods, not every entry ever made."""

    __tablename__ = "watchlist_classes"

    uid: Mapped[str] = mapped_column(ForeignKey("attestations.uid"), primary_key=True)
    goods_class: Mapped[str] = mapped_column(String(10), primary_key=True, index=True)


class EpcisEventRow(Base):
    """An attestation recording an EPCIS event, by the event's key (its eventID, or GS1's
    event hash) as SHA-256: a repeated import finds what is recorded by an index lookup."""

    __tablename__ = "epcis_events"

    uid: Mapped[str] = mapped_column(ForeignKey("attestations.uid"), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    attester: Mapped[str] = mapped_column(String(42), nullable=False)

    __table_args__ = (Index("ix_epcis_events_key_attester", "key_hash", "attester"),)


class BatchTreeRow(Base):
    """A batch's Merkle tree nodes (32 bytes each, root first), kept so that inclusion
    proofs are read, not rebuilt. Untrusted like every row: a proof from a tampered tree
    does not lead to the root the chain holds."""

    __tablename__ = "batch_trees"

    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    nodes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class BatchExtraMemberRow(Base):
    """A record a batch anchors although its row points at another batch that anchored it
    too: the contract cannot refuse a UID anchored twice, and each batch is complete only
    while the store holds every UID it anchors."""

    __tablename__ = "batch_extra_members"

    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    uid: Mapped[str] = mapped_column(ForeignKey("attestations.uid"), primary_key=True)


class BatchRow(Base):
    """A batch of attestations and its anchoring state: sealed -> sent -> anchored."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_index: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    root: Mapped[str] = mapped_column(String(66), nullable=False)
    previous_root: Mapped[str] = mapped_column(String(66), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    sealed_at: Mapped[float] = mapped_column(Float, nullable=False)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    anchored_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The nonce and EIP-1559 fees of the latest transaction sent for this batch: a
    # replacement reuses the nonce with raised fees (also after a crash).
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tip: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ChainAlarmRow(Base):
    """A raised chain alarm (fee ceiling, deep reorganisation, ...): present while it
    stands, read by every process (readiness, metrics)."""

    __tablename__ = "chain_alarms"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    raised_at: Mapped[float] = mapped_column(Float, nullable=False)


class WorkerLeaseRow(Base):
    """Who runs a singleton job (the anchoring worker) and until when."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)


class ChainEventRow(Base):
    """A log from the registry or the ledger, as indexed (one row per log, ever)."""

    __tablename__ = "chain_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contract: Mapped[str] = mapped_column(String(42), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    block_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    log_index: Mapped[int] = mapped_column(Integer, nullable=False)
    args: Mapped[str] = mapped_column(Text, nullable=False)  # JSON

    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_chain_events_log"),)


class RoleCheckpointRow(Base):
    """The registry's effective roles of one key from `since` on (from EffectiveRolesChanged)."""

    __tablename__ = "role_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(42), nullable=False, index=True)
    since: Mapped[int] = mapped_column(BigInteger, nullable=False)
    roles: Mapped[int] = mapped_column(Integer, nullable=False)
    granted: Mapped[int] = mapped_column(Integer, nullable=False)
    suspended: Mapped[bool] = mapped_column(Integer, nullable=False)
    retired: Mapped[bool] = mapped_column(Integer, nullable=False)
    valid_from: Mapped[int] = mapped_column(BigInteger, nullable=False)
    valid_until: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_id: Mapped[int] = mapped_column(ForeignKey("chain_events.id"), unique=True, nullable=False)


class IndexerCursorRow(Base):
    """How far the chain indexer has read (next block to read)."""

    __tablename__ = "indexer_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_block: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ApiKeyRow(Base):
    """A scoped API credential. Only a SHA-256 of the secret is stored: the secrets are
    256-bit random tokens, so a fast hash is enough and a leaked table reveals no key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[str] = mapped_column(String(256), nullable=False)  # comma-separated
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AccessLogRow(Base):
    """Every customs verification: who asked, when, about which shipment, and the verdict."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    shipment: Mapped[str] = mapped_column(String(66), nullable=False, index=True)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)


class ExporterHistoryRow(Base):
    """An exporter's shipments as a running aggregate, kept at ingest by
    `ledger.store.aggregates.add_to_aggregates`: how many it declared, and the public
    quantities of its latest HISTORY_WINDOW shipments (JSON list of [uid, quantity], oldest
    first). Risk signals only: never an input of a verdict."""

    __tablename__ = "exporter_history"

    attester: Mapped[str] = mapped_column(String(42), primary_key=True)
    shipments: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recent_quantities: Mapped[str] = mapped_column(Text, nullable=False)


class ExporterRouteRow(Base):
    """How many shipments an exporter declared to one (public) destination: a running
    aggregate kept with `ExporterHistoryRow`."""

    __tablename__ = "exporter_routes"

    attester: Mapped[str] = mapped_column(String(42), primary_key=True)
    destination: Mapped[str] = mapped_column(String(8), primary_key=True)
    shipments: Mapped[int] = mapped_column(BigInteger, nullable=False)
