"""The anchoring worker: acknowledged attestations -> Merkle batches -> roots on chain.

Exactly once, nothing lost:
- sealing assigns unbatched attestations to a new batch and fixes its chain index,
  root and predecessor in one database transaction;
- before a transaction is broadcast, its hash is committed; after a crash the worker
  looks the batch up on chain and either finds it anchored or sends it again;
- the ledger contract accepts one root per index, so a batch re-sent after a drop, a
  reorganisation or a crash can never be anchored twice;
- a batch counts as anchored only after `confirmations` blocks, and only while the
  block that holds it is still canonical; if it vanishes, the batch is sent again;
- only the holder of the database lease anchors, so several processes may run it; the
  holder is also the node's one indexer (`index`): it keeps the store's indexed copy of
  the registry current, so no two processes index the same events.

This module is longer than the usual 400 lines on purpose: the worker is one state
machine over a batch row (sealed -> sent -> anchored, with resend, fee replacement,
re-check after reorganisations and resequencing after a competing anchorer), and each
transition has to be read beside the others to see that a batch is anchored exactly
once. What stands apart lives elsewhere: recording one attestation directly
(`ledger/direct.py`), reading logs (`ledger/chain/logs.py`), fees (`ledger/chain/fees.py`),
the lease (`ledger/store/leases.py`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound

from .alarms import DEEP_REORG, FEE_CEILING, clear_alarm, raise_alarm
from .chain.client import ChainRevert, Deployment, decode_revert
from .chain.fees import (
    FeeCeilingExceeded,
    FeePolicy,
    Fees,
    base_fee,
    is_already_known,
    is_nonce_consumed,
    is_underpriced,
)
from .direct import contract_logs, record_directly
from .hashing import hex32, parse_hex
from .kinds import Kind
from .merkle import MerkleTree, tree_nodes
from .store.leases import acquire_lease, release_lease
from .store.models import AttestationRefRow, AttestationRow, BatchRow, BatchTreeRow
from .store.rows import attestation_from_row

log = logging.getLogger(__name__)

FEE_PAUSES = Counter(
    "provenance_anchoring_fee_pauses_total", "Anchoring passes paused because fees were above the ceiling"
)
DEEP_REORGS = Counter(
    "provenance_anchoring_deep_reorgs_total",
    "Anchored batches changed or removed by a reorganisation deeper than the policy",
)

SEALED, SENT, ANCHORED = "sealed", "sent", "anchored"
ZERO_ROOT = "0x" + "00" * 32
LEASE_NAME = "anchoring"


@dataclass
class StepReport:
    """What one worker step did."""

    leader: bool = False
    sealed: int = 0
    sent: int = 0
    anchored: int = 0
    resent: int = 0
    reorganised: int = 0


@dataclass
class AnchoringWorker:
    """Anchors batches for one deployment with `account` (which holds the anchorer role)."""

    deployment: Deployment
    sessions: sessionmaker[Session]
    account: LocalAccount
    confirmations: int = 2
    max_batch: int = 4096
    max_age: float = 5.0
    # EIP-1559 pricing, the ceiling and when a transaction counts as stuck (replaced).
    fees: FeePolicy = field(default_factory=FeePolicy)
    # "depth" (`confirmations` blocks) or the chain's "safe" / "finalized" block tag.
    confirmation_mode: str = "depth"
    # Re-check the last this many anchored batches against the chain, at most every
    # `recheck_every` seconds: a reorganisation deeper than the policy raises an alarm.
    recheck_batches: int = 16
    recheck_every: float = 10.0
    lease_seconds: float = 15.0
    # The store's indexed copy of the chain's events (the registry history the auditor's
    # replay compares with the chain): brought up to date by the lease holder, at most
    # every `index_every` seconds. Verdicts and ingest read the chain itself, not this.
    index: Callable[[], object] = lambda: None
    index_every: float = 2.0
    # Revocations younger than this are recorded directly (under the contract's maxSignatureAge).
    direct_revocation_window: float = 3600.0
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    clock: Callable[[], float] = time.time
    # Test hook: called with a step name ("sealed", "persisted", "broadcast", ...) so
    # tests can crash the worker at exactly that point.
    checkpoint: Callable[[str], None] = lambda _point: None
    # Called before every pass; raises to stop it (e.g. a dev key on a chain that is not
    # a development chain: asked of the chain actually connected, every time).
    guard: Callable[[], object] = lambda: None
    _fee_alarm_possible: bool = field(default=True, repr=False)
    _tag_warned: bool = field(default=False, repr=False)
    _rechecked_at: float = field(default=float("-inf"), repr=False)
    _indexed_at: float = field(default=float("-inf"), repr=False)

    # ------------------------------------------------------------------ the loop

    def step(self) -> StepReport:
        """One pass: take the lease, seal what is due, advance every open batch."""
        report = StepReport()
        self.guard()
        if not acquire_lease(self.sessions, LEASE_NAME, self.holder, self.lease_seconds, self.clock()):
            return report
        report.leader = True
        self._index()
        report.sent += self._record_revocations_directly()
        self._recheck_anchored(report)
        while self._seal_one():
            report.sealed += 1
        self._advance(report)
        return report

    def _index(self) -> None:
        """Index what the chain holds beyond the store's copy, at most every `index_every`
        seconds. A failure is logged and tried again next time: it never holds up anchoring."""
        now = self.clock()
        if now - self._indexed_at < self.index_every:
            return
        self._indexed_at = now
        try:
            self.index()
        except Exception as exc:  # noqa: BLE001 - the copy only lags; anchoring goes on
            log.warning("indexing the chain's events failed (tried again in %.0f s): %r", self.index_every, exc)

    def run(self, stop: threading.Event, *, interval: float = 0.5, max_backoff: float = 30.0) -> None:
        """Step until `stop` is set; back off exponentially while the chain or database fails."""
        backoff = interval
        while not stop.is_set():
            try:
                self.step()
                backoff = interval
            except Exception as exc:  # noqa: BLE001 - outages must not kill the worker
                log.warning("anchoring step failed (retrying in %.1fs): %s", backoff, exc)
                backoff = min(max_backoff, backoff * 2)
            stop.wait(backoff)
        release_lease(self.sessions, LEASE_NAME, self.holder)

    def drain(self, timeout: float = 60.0, *, mine: Callable[[], None] | None = None) -> None:
        """Step until nothing is left unanchored (for tests and the demo); `mine` can
        produce blocks on a chain that only mines on demand."""
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            if not self.pending_work():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("attestations still unanchored after drain timeout")
            if mine is not None:
                mine()
            time.sleep(0.05)

    def pending_work(self) -> bool:
        with self.sessions() as session:
            unbatched = session.scalar(
                select(AttestationRow.id)
                .where(AttestationRow.batch_id.is_(None), AttestationRow.direct_tx.is_(None))
                .limit(1)
            )
            open_batch = session.scalar(select(BatchRow.id).where(BatchRow.status != ANCHORED).limit(1))
        return unbatched is not None or open_batch is not None

    # ------------------------------------------------------- revocations, directly

    def _not_direct_candidate(self) -> Any:
        """Rows that go into batches: all but fresh revocations, which are recorded directly
        (and fall back to batches once older than the contract accepts, or if refused)."""
        cutoff = self.clock() - self.direct_revocation_window
        return (AttestationRow.kind != int(Kind.REVOCATION)) | (AttestationRow.received_at < cutoff)

    def _record_revocations_directly(self) -> int:
        """Record fresh revocations on chain with their signatures checked by the contract,
        so that any verifier holding only a bundle and the chain sees them. Returns how many."""
        cutoff = self.clock() - self.direct_revocation_window
        with self.sessions() as session:
            rows = session.scalars(
                select(AttestationRow)
                .where(
                    AttestationRow.kind == int(Kind.REVOCATION),
                    AttestationRow.batch_id.is_(None),
                    AttestationRow.direct_tx.is_(None),
                    AttestationRow.received_at >= cutoff,
                )
                .order_by(AttestationRow.id)
                .limit(20)
            ).all()
            refs = {
                r.uid: r.ref
                for r in session.execute(
                    select(AttestationRefRow.uid, AttestationRefRow.ref).where(
                        AttestationRefRow.uid.in_([row.uid for row in rows])
                    )
                )
            }
        recorded = 0
        for row in rows:
            attestation = attestation_from_row(row, [refs[row.uid]] if row.uid in refs else [])
            try:
                tx_hash = record_directly(
                    self.deployment,
                    self.account,
                    attestation,
                    parse_hex(row.signature, 65, "signature"),
                    parse_hex(row.uid, 32, "uid"),
                    self.fees,
                )
            except FeeCeilingExceeded as exc:
                self._fee_alarm_direct(exc)
                return recorded
            except ChainRevert as exc:
                log.warning("revocation %s not recordable directly (%s); it will be batched", row.uid, exc)
                with self.sessions.begin() as session:  # age it out of the direct window
                    session.execute(
                        update(AttestationRow).where(AttestationRow.id == row.id).values(received_at=cutoff - 1)
                    )
                continue
            if tx_hash is None:
                continue  # the chain's clock has not reached the signing time yet; next step
            with self.sessions.begin() as session:
                session.execute(update(AttestationRow).where(AttestationRow.id == row.id).values(direct_tx=tx_hash))
            recorded += 1
        return recorded

    # --------------------------------------------------------------------- sealing

    def _seal_one(self) -> bool:
        now = self.clock()
        with self.sessions.begin() as session:
            rows = session.execute(
                select(AttestationRow.id, AttestationRow.uid, AttestationRow.received_at)
                .where(AttestationRow.batch_id.is_(None), AttestationRow.direct_tx.is_(None))
                .where(self._not_direct_candidate())
                .order_by(AttestationRow.id)
                .limit(self.max_batch)
            ).all()
            if not rows:
                return False
            if len(rows) < self.max_batch and now - min(r.received_at for r in rows) < self.max_age:
                return False
            last = session.scalars(select(BatchRow).order_by(BatchRow.chain_index.desc()).limit(1)).first()
            if last is not None:
                index, previous = last.chain_index + 1, last.root
            else:
                index, previous = self._chain_tip()
            tree = MerkleTree.of([parse_hex(r.uid, 32, "uid") for r in rows])
            batch = BatchRow(
                chain_index=index,
                root=hex32(tree.root),
                previous_root=previous,
                count=len(rows),
                status=SEALED,
                attempts=0,
                sealed_at=now,
            )
            session.add(batch)
            session.flush()
            # The tree is kept with the batch, so inclusion proofs are read, never rebuilt
            # per batch by the first verification that needs one (measured: most first-time
            # verifications at 1,000,000 records met a batch whose tree was not yet kept).
            session.add(BatchTreeRow(batch_id=batch.id, nodes=tree_nodes(tree)))
            session.execute(
                update(AttestationRow).where(AttestationRow.id.in_([r.id for r in rows])).values(batch_id=batch.id)
            )
        log.info("sealed batch %d: %d attestations, root %s", index, len(rows), batch.root)
        self.checkpoint("sealed")
        return True

    def _chain_tip(self) -> tuple[int, str]:
        """Next free batch index on chain and the root before it (binary search on views)."""
        ledger = self.deployment.ledger

        def root(i: int) -> bytes:
            return bytes(ledger.functions.batchRoot(i).call())

        if root(0) == bytes(32):
            return 0, ZERO_ROOT
        high = 1
        while root(high) != bytes(32):
            high *= 2
        low = high // 2  # root(low) set, root(high) empty
        while high - low > 1:
            mid = (low + high) // 2
            if root(mid) != bytes(32):
                low = mid
            else:
                high = mid
        return high, hex32(root(low))

    # ------------------------------------------------------------------- advancing

    def _advance(self, report: StepReport) -> None:
        with self.sessions() as session:
            open_batches = session.scalars(
                select(BatchRow).where(BatchRow.status != ANCHORED).order_by(BatchRow.chain_index)
            ).all()
        for batch in open_batches:
            if batch.status == SEALED and not self._send(batch, report):
                return  # the sequence is strict: later batches wait for this one
            if batch.status == SENT:
                self._confirm(batch, report)
                if batch.status != ANCHORED:
                    return

    def _recheck_anchored(self, report: StepReport) -> None:
        """Re-check the latest anchored batches against the chain. A batch the node
        reported anchored (final under the policy) whose root is gone or changed, or whose
        block is no longer canonical, means a reorganisation deeper than the policy: raise
        the standing DEEP_REORG alarm with the facts and put the batch back in the
        pipeline (sent again under its index if free, resequenced if taken). Never
        silently trusted, nothing lost."""
        now = self.clock()
        if now - self._rechecked_at < self.recheck_every:
            return
        self._rechecked_at = now
        w3 = self.deployment.w3
        with self.sessions() as session:
            anchored = session.scalars(
                select(BatchRow)
                .where(BatchRow.status == ANCHORED)
                .order_by(BatchRow.chain_index.desc())
                .limit(self.recheck_batches)
            ).all()
        for batch in reversed(anchored):
            on_chain = self._on_chain_root(batch.chain_index)
            canonical = None
            if batch.block_number is not None:
                try:
                    canonical = hex32(bytes(w3.eth.get_block(batch.block_number)["hash"]))
                except Exception:  # noqa: BLE001 - a block beyond the head after a rollback
                    canonical = None
            if on_chain == batch.root and canonical == batch.block_hash:
                continue
            if on_chain == batch.root:
                fact = (
                    f"its block {batch.block_number} ({batch.block_hash}) is no longer canonical; "
                    "the root is still on chain"
                )
            elif on_chain == ZERO_ROOT:
                fact = (
                    f"its root {batch.root} is no longer on chain (block {batch.block_number} {batch.block_hash} gone)"
                )
            else:
                fact = f"the chain now holds root {on_chain} at its index instead of {batch.root}"
            DEEP_REORGS.inc()
            report.reorganised += 1
            raise_alarm(
                self.sessions,
                DEEP_REORG,
                f"batch {batch.chain_index}, reported anchored with {self.confirmation_mode} finality "
                f"({self.confirmations} confirmations): {fact}",
                now,
            )
            self._set(batch, status=SENT, block_number=None, block_hash=None, anchored_at=None)

    def _on_chain_root(self, index: int) -> str:
        return hex32(bytes(self.deployment.ledger.functions.batchRoot(index).call()))

    def _send(self, batch: BatchRow, report: StepReport) -> bool:
        on_chain = self._on_chain_root(batch.chain_index)
        if on_chain == batch.root:
            self._set(batch, status=SENT, sent_at=self.clock())  # anchored by an earlier attempt
            return True
        if on_chain != ZERO_ROOT:
            self._resequence(batch)
            return False
        tx = self._anchor_tx(batch)
        if tx is None:
            return False
        nonce = self._nonce_for(batch)
        try:
            fees = self.fees.quote(base_fee(self.deployment.w3))
        except FeeCeilingExceeded as exc:
            self._fee_alarm(batch, exc)
            return False
        self._fees_ok()
        if not self._sign_persist_broadcast(batch, tx, nonce, fees):
            return True  # the nonce was used meanwhile: `_confirm` finds out by what
        report.sent += 1
        if batch.attempts > 1:
            report.resent += 1
        return True

    def _anchor_tx(self, batch: BatchRow) -> dict[str, Any] | None:
        """The unsigned anchoring transaction of `batch` (fees and nonce not yet set), or
        None when the contract would refuse it now."""
        fn = self.deployment.ledger.functions.anchorBatch(
            batch.chain_index, bytes.fromhex(batch.root[2:]), bytes.fromhex(batch.previous_root[2:]), batch.count
        )
        try:
            tx: dict[str, Any] = dict(fn.build_transaction({"from": self.account.address}))
        except (ContractCustomError, ContractLogicError) as exc:
            revert = decode_revert(exc.data if isinstance(exc.data, str) else None)
            log.warning("batch %d not sendable now: %s", batch.chain_index, revert)
            return None
        for key in ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
            tx.pop(key, None)
        tx["gas"] = int(tx.get("gas", 80_000) * 1.2) + 10_000
        return tx

    def _nonce_for(self, batch: BatchRow) -> int:
        """The nonce to send `batch` under: the one recorded for it while the chain has not
        used it (a resend or replacement: never a second transaction for one batch, also
        after a crash), else the account's next one."""
        w3 = self.deployment.w3
        latest = w3.eth.get_transaction_count(self.account.address, "latest")
        if batch.nonce is not None and batch.nonce >= latest:
            return batch.nonce
        return max(latest, w3.eth.get_transaction_count(self.account.address, "pending"))

    def _sign_persist_broadcast(self, batch: BatchRow, tx: dict[str, Any], nonce: int, fees: Fees) -> bool:
        """Sign, commit the hash, nonce and fees, then broadcast. False when the node says
        the nonce is already used (one of our transactions was mined meanwhile)."""
        w3 = self.deployment.w3
        for _ in range(2):
            tx = {**tx, "nonce": nonce, **fees.fields()}
            signed = self.account.sign_transaction(tx)
            # Commit before broadcasting: after a crash we know what we may have sent.
            self._set(
                batch,
                status=SENT,
                tx_hash="0x" + bytes(signed.hash).hex(),
                sent_at=self.clock(),
                attempts=batch.attempts + 1,
                block_number=None,
                block_hash=None,
                nonce=nonce,
                max_fee=fees.max_fee,
                tip=fees.tip,
            )
            self.checkpoint("persisted")
            try:
                w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                if is_already_known(exc):
                    break
                if is_nonce_consumed(exc):
                    log.warning("batch %d: nonce %d already used on chain", batch.chain_index, nonce)
                    return False
                if not is_underpriced(exc):
                    raise
                # An earlier transaction of ours still waits under this nonce: raise the fees
                # (if the ceiling allows; else it keeps waiting there, with the alarm).
                try:
                    fees = self.fees.quote(base_fee(w3), previous=fees)
                except FeeCeilingExceeded as ceiling:
                    self._fee_alarm(batch, ceiling)
                    return True
                continue
            break
        self.checkpoint("broadcast")
        return True

    def _replace(self, batch: BatchRow, report: StepReport) -> None:
        """`batch`'s transaction waits unmined past `stuck_after`: the same transaction
        under the same nonce with raised fees (if the ceiling allows; else it keeps waiting
        and the fee alarm is raised)."""
        w3 = self.deployment.w3
        nonce = batch.nonce
        if nonce is None:  # sent before nonces were recorded
            nonce = int(w3.eth.get_transaction(batch.tx_hash)["nonce"])  # type: ignore[arg-type]
        previous = Fees(batch.max_fee or 0, batch.tip or 0)
        try:
            fees = self.fees.quote(base_fee(w3), previous=previous)
        except FeeCeilingExceeded as exc:
            self._fee_alarm(batch, exc)
            return
        self._fees_ok()
        tx = self._anchor_tx(batch)
        if tx is None:
            return
        old = batch.tx_hash
        if self._sign_persist_broadcast(batch, tx, nonce, fees):
            report.resent += 1
            log.warning(
                "batch %d: transaction %s not mined in %.0fs; replaced by %s (nonce %d, max fee %d, tip %d wei)",
                batch.chain_index,
                old,
                self.fees.stuck_after,
                batch.tx_hash,
                nonce,
                fees.max_fee,
                fees.tip,
            )

    def _fee_alarm_direct(self, exc: FeeCeilingExceeded) -> None:
        FEE_PAUSES.inc()
        self._fee_alarm_possible = True
        raise_alarm(self.sessions, FEE_CEILING, f"direct recording of revocations paused: {exc}", self.clock())

    def _fee_alarm(self, batch: BatchRow, exc: FeeCeilingExceeded) -> None:
        FEE_PAUSES.inc()
        self._fee_alarm_possible = True
        raise_alarm(
            self.sessions,
            FEE_CEILING,
            f"anchoring paused at batch {batch.chain_index}: {exc}; nothing is lost, it resumes when fees fall",
            self.clock(),
        )

    def _fees_ok(self) -> None:
        if self._fee_alarm_possible:
            clear_alarm(self.sessions, FEE_CEILING)
            self._fee_alarm_possible = False

    def _confirm(self, batch: BatchRow, report: StepReport) -> None:
        w3 = self.deployment.w3
        receipt = None
        if batch.tx_hash:
            try:
                receipt = w3.eth.get_transaction_receipt(batch.tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                receipt = None
        if receipt is None or receipt["status"] != 1:
            located = self._locate_anchor(batch) if self._on_chain_root(batch.chain_index) == batch.root else None
            if located is None:
                if receipt is not None or not self._known(batch):
                    log.warning(
                        "batch %d: transaction %s failed or vanished; sending again", batch.chain_index, batch.tx_hash
                    )
                    self._set(batch, status=SEALED, block_number=None, block_hash=None)
                elif self.clock() - (batch.sent_at or 0) > self.fees.stuck_after:
                    self._replace(batch, report)
                return
            receipt = located
        block_number = int(receipt["blockNumber"])
        block_hash = hex32(bytes(receipt["blockHash"]))
        if batch.block_hash != block_hash:
            self._set(
                batch,
                block_number=block_number,
                block_hash=block_hash,
                tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            )
            self.checkpoint("included")
        if not self._final(block_number):
            return
        canonical = hex32(bytes(w3.eth.get_block(block_number)["hash"]))
        if canonical != block_hash or self._on_chain_root(batch.chain_index) != batch.root:
            log.warning("batch %d: block %d was reorganised away; checking again", batch.chain_index, block_number)
            self._set(batch, block_number=None, block_hash=None)
            return
        self._set(batch, status=ANCHORED, anchored_at=self.clock())
        self.checkpoint("anchored")
        report.anchored += 1
        log.info("batch %d anchored in block %d (%d attestations)", batch.chain_index, block_number, batch.count)

    def _final(self, block_number: int) -> bool:
        """Whether `block_number` is final under the confirmation policy: `confirmations`
        blocks deep, or at or below the chain's `safe` / `finalized` block (by depth where
        the chain does not offer the tag)."""
        w3 = self.deployment.w3
        if self.confirmation_mode != "depth":
            try:
                tagged = w3.eth.get_block(self.confirmation_mode)  # type: ignore[arg-type]
                return block_number <= int(tagged["number"])
            except Exception as exc:  # noqa: BLE001 - a chain without the tag: by depth
                if not self._tag_warned:
                    log.warning(
                        "chain offers no %r block (%s); counting confirmations by depth", self.confirmation_mode, exc
                    )
                    self._tag_warned = True
        return w3.eth.block_number - block_number + 1 >= self.confirmations

    def _known(self, batch: BatchRow) -> bool:
        """True when the node knows our latest transaction for `batch` (pending or mined)."""
        if not batch.tx_hash:
            return False
        try:
            self.deployment.w3.eth.get_transaction(batch.tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def _locate_anchor(self, batch: BatchRow) -> Any:
        """The receipt of the transaction that anchored `batch` (when not ours, or re-sent)."""
        ledger = self.deployment.ledger
        logs = contract_logs(self.deployment, ledger.events.BatchAnchored(), batch.chain_index.to_bytes(32, "big"))
        for entry in logs:
            if hex32(bytes(entry["args"]["root"])) == batch.root:
                return self.deployment.w3.eth.get_transaction_receipt(entry["transactionHash"])
        return None

    def _resequence(self, conflicting: BatchRow) -> None:
        """Someone else holds our index on chain: move our unanchored batches after the tip."""
        index, previous = self._chain_tip()
        log.error(
            "batch index %d is taken on chain by another root; resequencing from %d", conflicting.chain_index, index
        )
        with self.sessions.begin() as session:
            pending = session.scalars(
                select(BatchRow).where(BatchRow.status != ANCHORED).order_by(BatchRow.chain_index)
            ).all()
            offset = 10**12  # move out of the way first: chain_index is unique
            for b in pending:
                b.chain_index += offset
            session.flush()
            for b in pending:
                b.chain_index, b.previous_root, b.status = index, previous, SEALED
                b.tx_hash = b.block_hash = None
                b.block_number = None
                index, previous = index + 1, b.root

    def _set(self, batch: BatchRow, **values: Any) -> None:
        with self.sessions.begin() as session:
            session.execute(update(BatchRow).where(BatchRow.id == batch.id).values(**values))
        for key, value in values.items():
            setattr(batch, key, value)
