"""The ledger as one object: what the API, the command line and the tests call.

`Ledger.open(settings)` wires the store, the chain deployment, the indexer, the registry
view, the signature checker and the sealer; its methods are the core's public functions.
It never imports the web framework.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .access import AccessLog
from .anchoring import ANCHORED, AnchoringWorker
from .anchors import AnchorRef, BatchFacts
from .chain.accounts import dev_account, load_keystore, require_dev_chain
from .chain.client import Deployment
from .chain.failover import make_web3
from .chain.fees import FeePolicy
from .chain.manifest import Manifest
from .chain.view import ChainRegistry, ChainView
from .completeness import CompletenessMonitor
from .config import Settings
from .direct import record_directly
from .eip712 import Domain, parse_typed_data, typed_data
from .hashing import hex32, parse_hex
from .indexer import ChainIndexer
from .ingest import Accepted, Ingestor, Rejected
from .kinds import Kind
from .licence_output import LicenceOutputs
from .merkle import MerkleTree, leaf_position, path_from_nodes, tree_nodes
from .public_records import encode_batch, encode_direct
from .reasons import Reason
from .reference_index import ReferenceIndexCheck
from .registry_view import RegistryView
from .sealing import Sealer
from .signatures import SignatureChecker, web3_erc1271_caller
from .store.db import make_engine, migrate, session_factory, without_transaction
from .store.models import AttestationRefRow, AttestationRow, BatchRow, BatchTreeRow
from .store.rows import attestation_from_row, batch_member_uids
from .verify.checks.anchoring import KEPT_TREES, check_kept_tree
from .verify.engine import catch_up
from .verify.evidence import Evidence, StoreCorrupted
from .verify.model import CheckStatus, VerificationResult
from .verify.policy import VerificationPolicy
from .verify.risk import ShipmentHistory
from .verify.service import export_bundle, read_case, unverifiable, verify_bundle, verify_case, verify_in_store
from .watchlist_index import WatchlistIndexCheck

log = logging.getLogger(__name__)


class Ledger:
    """One deployment's ledger: store + chain. Thread-safe for concurrent ingest."""

    def __init__(self, settings: Settings, engine: Engine, deployment: Deployment, sealer: Sealer) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        # Verification's reads (newest row, evidence, licence catch-up) need no transaction.
        self._reads = without_transaction(engine)
        self.deployment = deployment
        self.domain = Domain(deployment.manifest.chain_id, deployment.manifest.ledger)
        # The chain's facts (registry history included) mirrored in memory from its logs:
        # what verdicts and ingest rest on. The store's indexed copy (`indexer`, kept
        # current by the node's anchoring worker) is what the auditor's replay compares
        # with the chain, and only a fallback for ingest before the chain was ever read.
        self.chain_view = ChainView(deployment, cache_depth=settings.confirmations)
        self.indexer = ChainIndexer(deployment, self.sessions, confirmations=settings.confirmations)
        self.registry = ChainRegistry(self.chain_view, fallback=RegistryView(self.sessions))
        self.checker = SignatureChecker(web3_erc1271_caller(deployment.w3))
        self.sealer = sealer
        self.policy = VerificationPolicy.from_settings(settings)
        self.licence_outputs = LicenceOutputs(self.sessions, self.domain, self.checker, sealer)
        self.completeness = CompletenessMonitor(
            self.sessions,
            settings.confirmations,
            settings.completeness_interval,
            (WatchlistIndexCheck(self.domain, self.checker), ReferenceIndexCheck(self.domain)),
        )
        # (shipment, policy) -> (chain head, newest row id, verdict, valid until)
        self._verdicts: dict[tuple[str, VerificationPolicy], tuple[int, int, VerificationResult, float]] = {}
        self._last_asked = float("-inf")  # time.monotonic() of the latest verification asked for
        self.ingestor = Ingestor(
            self.sessions,
            self.domain,
            self.registry,
            self.checker,
            sealer,
            refresh_registry=self.refresh_registry,
            max_signature_age=deployment.manifest.max_signature_age,
        )
        self.access_log = AccessLog(self.sessions)

    @classmethod
    def open(cls, settings: Settings, *, manifest: Manifest | None = None, create_key: bool = True) -> Ledger:
        """Open the ledger described by `settings`, migrating the database to the latest schema."""
        manifest = manifest or Manifest.load(settings.resolved_manifest_path)
        # Several endpoints (PROVENANCE_RPC_URLS): failover, checked to be the manifest's chain.
        w3 = make_web3(settings.rpc_urls or (settings.resolved_rpc_url,), chain_id=manifest.chain_id, timeout=10)
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        sealer = Sealer.from_key_file(settings.resolved_data_key_path, create=create_key)
        return cls(settings, engine, Deployment(w3, manifest), sealer)

    def close(self) -> None:
        self.access_log.close()
        self.engine.dispose()

    # --------------------------------------------------------------------- ingest

    def refresh_registry(self, needed_time: int, *, force: bool = False) -> None:
        """Read registry changes up to the chain head when `needed_time` is not yet covered
        (with `force`, from the newest block at once)."""
        self.registry.refresh(needed_time, force=force)

    def ingest(self, submission: object) -> Accepted:
        """Validate and durably store one signed attestation (raises `Rejected`)."""
        return self.ingestor.ingest(submission)

    def ingest_many(self, submissions: list[object]) -> list[Accepted | Rejected]:
        """Validate each submission and store the valid ones in one transaction."""
        return self.ingestor.ingest_many(submissions)

    # ---------------------------------------------------------------------- reads

    def get_attestation(self, uid: str, *, include_confidential: bool = False) -> dict[str, Any] | None:
        """The stored attestation as typed data, signature, disclosure and anchor status."""
        key = uid.lower()
        with self.sessions() as session:
            row = session.scalars(select(AttestationRow).where(AttestationRow.uid == key)).first()
            if row is None:
                return None
            refs = session.scalars(
                select(AttestationRefRow.ref).where(AttestationRefRow.uid == key).order_by(AttestationRefRow.position)
            ).all()
        attestation = attestation_from_row(row, list(refs))
        fields = json.loads(row.disclosed)
        if include_confidential and row.sealed is not None:
            fields.update(self.sealer.open(row.sealed, parse_hex(row.uid, 32, "uid")))
        return {
            "uid": row.uid,
            "kind": Kind(row.kind).name,
            "typedData": typed_data(attestation, self.domain),
            "signature": row.signature,
            "payload": {"fieldHashes": json.loads(row.field_hashes), "fields": fields},
            "confidentialFields": row.sealed is not None,
            "receivedAt": row.received_at,
            "anchor": self.anchor_of(row.uid).to_json(),
        }

    def anchor_of(self, uid: str) -> AnchorRef:
        """Anchoring status of `uid`, with its inclusion proof once its batch is sealed."""
        with self.sessions() as session:
            row = session.execute(
                select(AttestationRow.batch_id, AttestationRow.direct_tx).where(AttestationRow.uid == uid.lower())
            ).first()
            if row is None:
                raise KeyError(uid)
            batch = session.get(BatchRow, row.batch_id) if row.batch_id is not None else None
        return self.anchor_from(uid, row.batch_id, row.direct_tx, batch)

    def anchor_from(
        self,
        uid: str,
        batch_id: int | None,
        direct_tx: str | None,
        batch: BatchRow | BatchFacts | None,
        *,
        proof: bool = True,
    ) -> AnchorRef:
        """The anchor reference of `uid` from its row's batch id / direct tx and its batch
        row, with the batch's kept tree and the leaf's place in it; without `proof`, the
        proof is left for the caller to read from those (`merkle.path_from_nodes`).
        KeyError when the kept tree does not hold the leaf; RuntimeError when the batch's
        stored members no longer rebuild its root."""
        if direct_tx:
            return AnchorRef("direct", tx_hash=direct_tx)
        if batch_id is None or batch is None:
            return AnchorRef("pending")
        nodes = self._batch_nodes(batch.id, batch.root)
        leaf = leaf_position(nodes, parse_hex(uid.lower(), 32, "uid"))
        path = tuple(hex32(p) for p in path_from_nodes(nodes, leaf)) if proof else ()
        return AnchorRef(
            batch.status, batch.chain_index, batch.root, path, batch.tx_hash, batch.block_number, nodes, leaf
        )

    def batches_by_id(self, ids: set[int]) -> dict[int, BatchRow]:
        """Batch rows by id, in one query."""
        if not ids:
            return {}
        with self.sessions() as session:
            return {b.id: b for b in session.scalars(select(BatchRow).where(BatchRow.id.in_(ids)))}

    @lru_cache(maxsize=KEPT_TREES)  # noqa: B019 - a sealed batch's tree never changes; bounded
    def _batch_nodes(self, batch_id: int, root: str) -> bytes:
        """The batch's tree nodes: read from the store, or rebuilt from its members once
        (checked against `root`) and kept, so proofs never rebuild a tree per request."""
        with self.sessions() as session:
            kept = session.get(BatchTreeRow, batch_id)
            if kept is not None and hex32(kept.nodes[:32]) == root:
                return bytes(kept.nodes)
        nodes = tree_nodes(self._batch_tree(batch_id, root))
        try:
            with self.sessions.begin() as session:
                session.merge(BatchTreeRow(batch_id=batch_id, nodes=nodes))
        except IntegrityError:
            pass  # another process kept it first: the same tree
        return nodes

    def _batch_tree(self, batch_id: int, root: str) -> MerkleTree:
        """The batch's tree rebuilt from its stored members; RuntimeError unless it has `root`."""
        with self.sessions() as session:
            uids = batch_member_uids(session, batch_id)
        tree = MerkleTree.of([parse_hex(u, 32, "uid") for u in uids])
        if hex32(tree.root) != root:
            raise RuntimeError(f"batch {batch_id}: stored attestations do not rebuild root {root}")
        return tree

    def _wait_for_chain_time(self, at: int, timeout: float = 60.0) -> None:
        """Block until the chain's latest block is at or after unix time `at`: the contract
        refuses signing times later than its block (IssuedInFuture)."""
        deadline = time.monotonic() + timeout
        while self.deployment.now() < at:
            if time.monotonic() > deadline:
                raise TimeoutError(f"chain time is still before {at} after {timeout}s (no new blocks?)")
            time.sleep(0.25)

    def counts(self) -> dict[str, int]:
        """How many attestations are stored, batched, and anchored."""
        with self.sessions() as session:
            total = session.scalar(select(func.count(AttestationRow.id))) or 0
            anchored = (
                session.scalar(
                    select(func.count(AttestationRow.id))
                    .join(BatchRow, AttestationRow.batch_id == BatchRow.id)
                    .where(BatchRow.status == ANCHORED)
                )
                or 0
            )
            batched = session.scalar(select(func.count(AttestationRow.id)).where(AttestationRow.batch_id.isnot(None)))
        return {"attestations": int(total), "batched": int(batched or 0), "anchored": int(anchored)}

    # --------------------------------------------------------------- verification

    def verify_shipment(self, shipment_uid: str, policy: VerificationPolicy | None = None) -> VerificationResult:
        """The verdict on a shipment in the store (see `ledger.verify`), under the
        configured policy unless another is given.

        A verdict depends only on the chain (its head), the store (its newest row), the
        policy and the time; it is reused while none of those has changed and no
        attestation in its evidence has expired. A new block — a revocation, a registry
        change, an anchor — or a new record invalidates it at once. A verdict with a
        check that could not run is never reused. A shipment not asked before is verified
        against the chain view's snapshot, as a bundle is (its head re-read at most every
        0.25 s: the verdict is as of that head, as if asked that much earlier; it saves a
        chain read per first-time question).
        """
        self._last_asked = time.monotonic()
        policy = policy or self.policy
        uid = shipment_uid.lower()
        # The licence view's catch-up, which reads the newest row id with what was stored
        # since the last one (one statement), and for a verdict not given before, the
        # evidence and the exporter's history: one connection, released before the checks
        # run. The newest row id is read first, so a row stored while the evidence is read
        # makes the verdict's key stale (it is verified again), never the other way round.
        # No transaction: each statement reads committed rows as of its own start, as it
        # did inside one (READ COMMITTED; SQLite's driver opened none for a SELECT).
        cached = self._verdicts.get((uid, policy))
        with self._reads.connect() as conn:
            newest = catch_up(self.licence_outputs, conn)  # -1: failed (and nothing is reused or kept)
            reusable = cached is not None and newest >= 0 and cached[1] == newest and time.time() < cached[3]
            case = None if reusable else self._read_case(uid, conn)
        if cached is not None and reusable:
            # Only a verdict already given is checked against the exact head (one read of
            # the chain); a shipment asked for the first time reads the chain once, in
            # the verification itself.
            try:
                head = self.chain_view.head(max_age=0)  # exact: a new block must invalidate a verdict at once
            except Exception:  # noqa: BLE001 - the verification itself reports the chain as unavailable
                head = -1
            if head >= 0 and head == cached[0]:
                return cached[2]
            with self._reads.connect() as conn:
                newest = catch_up(self.licence_outputs, conn)
                case = self._read_case(uid, conn)
        if isinstance(case, VerificationResult):
            return case  # the store's record of the shipment itself cannot be read back
        assert case is not None
        result = verify_case(self, *case, policy, self.chain_view)
        if newest >= 0 and result.chain_head >= 0 and not any(c.status is CheckStatus.ERROR for c in result.checks):
            if len(self._verdicts) > 1024:
                self._verdicts.clear()
            self._verdicts[(uid, policy)] = (result.chain_head, newest, result, result.valid_until)
        return result

    def _read_case(self, uid: str, conn: Connection) -> tuple[Evidence, ShipmentHistory] | VerificationResult:
        """The shipment's evidence and exporter history read through `conn`, or the
        UNVERIFIABLE verdict when the store's record of the shipment is unreadable."""
        try:
            return read_case(self, uid, conn)
        except StoreCorrupted as exc:
            return unverifiable(uid, Reason.STORE_CORRUPTED, str(exc))

    def warm_up(self, progress: Callable[[str], None] | None = None) -> dict[str, float]:
        """Do now, once, what the first verifications of this process would otherwise pay
        for on the request path, and return how long each step took (seconds):

        - `chain`: the chain's facts read from the deployment block on (first snapshot);
        - `completeness`: the node's copy measured against that snapshot — every batch's
          root rebuilt from its stored members, every watch-list entry checked — exactly
          the measurement a verification makes when the cached one is stale;
        - `anchors`: for every stored batch, its block's time and whether its anchoring
          transaction emitted it from the ledger contract, read from the chain (kept by the
          chain view, as the first verification meeting the batch would keep them); and
          for the newest batches the process keeps trees of, the kept tree read and checked
          to hash up to the root the chain holds (`verify.checks.anchoring.check_kept_tree`);
        - `licences`: the productions and sub-licences under every stored licence read and
          each row checked (UID, signature, commitments), as the first verification
          meeting the licence would;
        - `rest`: one verification of the newest stored shipment (its verdict discarded),
          so that no request pays for a statement's first compilation; then everything
          the process holds is moved out of the garbage collector's sight (`gc.freeze`).

        Nothing is taken on trust from the store that a verification would check: this
        runs the same code a verification runs, only earlier, and a verdict is the same
        whether it ran or not. `progress` receives a line now and then (for the log).
        Safe while verifications run (each step is thread-safe), but it competes with them
        for the interpreter, so a node serves once it is done (`api.app`)."""
        say = progress or (lambda _line: None)
        took: dict[str, float] = {}
        started = time.perf_counter()
        snapshot = self.chain_view.snapshot()
        took["chain"] = time.perf_counter() - started
        say(f"warm-up: chain read to block {snapshot.head} in {took['chain']:.1f} s; measuring completeness")
        started = time.perf_counter()
        watermark = self.completeness.watermark(snapshot)
        took["completeness"] = time.perf_counter() - started
        say(f"warm-up: completeness measured in {took['completeness']:.1f} s: {watermark.describe()}")
        started = time.perf_counter()
        with self.sessions() as session:
            sent = session.execute(
                select(BatchRow.chain_index, BatchRow.tx_hash, BatchRow.id, BatchRow.root)
                .where(BatchRow.tx_hash.isnot(None))
                .order_by(BatchRow.chain_index.desc())
            )
            batches = [(int(index), str(tx), int(batch_id), str(root)) for index, tx, batch_id, root in sent]
        for newest, (index, tx, batch_id, root) in enumerate(batches):
            found = snapshot.batch(index)
            if found is not None:
                self.chain_view.block_time(found[1])
                self.chain_view.tx_emitted_by_ledger(tx, index)
                if newest < KEPT_TREES and found[0] == root.lower():
                    # A batch's kept tree is read and hashed through once, as the first
                    # verification proving enough of its leaves would: only the newest,
                    # as many as the process keeps. One whose members no longer rebuild
                    # its root is reported by the verifications that meet it.
                    with contextlib.suppress(RuntimeError, ValueError):
                        check_kept_tree(self._batch_nodes(batch_id, root))
        took["anchors"] = time.perf_counter() - started
        say(f"warm-up: {len(batches)} batches' anchoring transactions and block times read in {took['anchors']:.1f} s")
        started = time.perf_counter()
        last = [started]

        def licences_read(done: int, total: int) -> None:
            if time.perf_counter() - last[0] >= 5 or done == total:
                last[0] = time.perf_counter()
                say(f"warm-up: licences read and checked: {done} of {total}")

        self.licence_outputs.warm(licences_read)
        took["licences"] = time.perf_counter() - started
        started = time.perf_counter()
        with self.sessions() as session:
            newest = session.scalar(
                select(AttestationRow.uid)
                .where(AttestationRow.kind == int(Kind.SHIPMENT))
                .order_by(AttestationRow.id.desc())
                .limit(1)
            )
        if newest is not None:
            # The statements' first compilation and the code's first run, on one shipment
            # (its verdict is not kept: the cache holds only verdicts someone asked for).
            verify_in_store(self, newest, self.policy, self.chain_view)
        # What the process keeps from here on (the licences' checked productions above all)
        # is kept for its life: out of the collector's sight, a full collection does not
        # walk it again on whichever request it lands (measured after a warm-up at 100,004
        # records, 186,000 objects tracked: a full collection 73 ms of CPU, frozen ~0 ms).
        gc.collect()
        gc.freeze()
        took["rest"] = time.perf_counter() - started
        say(f"warm-up: done ({', '.join(f'{k} {v:.1f} s' for k, v in took.items())})")
        return took

    def keep_warm(self, stop: threading.Event, head_every: float = 0.2, busy_for: float = 10.0) -> None:
        """Until `stop` is set, keep off the request path what verifications would
        otherwise pay for now and then: the chain's head re-read every `head_every`
        seconds while verifications are being asked for (one in the last `busy_for`
        seconds: an idle node does not poll its RPC endpoint; a verification re-reads the
        head itself when it is over 0.25 s old), and the completeness watermark measured
        again at half its reuse interval, busy or not (a verification measures it when it
        is older than the interval). The verdicts are the same: they state the head and
        the measurement they rest on. A failure is logged and tried again; verifications
        then do the work themselves."""
        interval = self.completeness.interval
        measured = time.monotonic()
        while not stop.wait(head_every):
            try:
                due = interval >= 1 and time.monotonic() - measured >= interval / 2
                if not due and time.monotonic() - self._last_asked > busy_for:
                    continue  # idle: nothing to keep fresh yet
                # Read now (max_age 0), so that the head a verification finds is never older
                # than its own re-read limit (0.25 s): with the default limit this re-read
                # only every other pass, and a verification read the head itself meanwhile.
                snapshot = self.chain_view.snapshot(max_age=0)
                if due:
                    self.completeness.refresh(snapshot)
                    measured = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - a verification reports the trouble itself
                log.warning("keeping the node's views fresh failed (verifications do it themselves): %r", exc)
                stop.wait(1.0)

    def verify_bundle(self, bundle: object, policy: VerificationPolicy | None = None) -> VerificationResult:
        """The verdict on a proof bundle presented at the border, against this node's view
        of the chain (kept current across requests), under the configured policy."""
        self._last_asked = time.monotonic()
        return verify_bundle(bundle, self.chain_view, policy or self.policy, self.checker, complete_from=self)

    def public_batch(self, index: int) -> bytes | None:
        """The JSON document of anchored batch `index` as this node serves it to its peers
        (`ledger.public_records`), or None when it holds no such batch."""
        with self.sessions() as session:
            return encode_batch(session, index, self.domain)

    def public_direct(self, uid: str) -> bytes | None:
        """The JSON document of an attestation this node holds as recorded directly at the
        contract (`ledger.public_records`), or None."""
        with self.sessions() as session:
            return encode_direct(session, uid, self.domain)

    def export_bundle(self, shipment_uid: str) -> dict[str, Any]:
        """The self-contained proof bundle of a shipment in the store."""
        return export_bundle(self, shipment_uid)

    # ------------------------------------------------------------------ anchoring

    def anchor_direct(self, uid: str, sender: LocalAccount) -> str:
        """Record a stored attestation directly on chain (the contract checks its signature
        and role itself), for records other contracts must read. Returns the tx hash.

        Safe to repeat: if the chain already holds the record, its transaction is found
        and stored instead of sending another.
        """
        record = self.get_attestation(uid)
        if record is None:
            raise KeyError(f"unknown attestation {uid}")
        attestation, _domain = parse_typed_data(record["typedData"])
        signature = parse_hex(record["signature"], 65, "signature")
        tx_hash = None
        while tx_hash is None:  # waits for the chain's clock to reach the signing time
            tx_hash = record_directly(self.deployment, sender, attestation, signature, parse_hex(uid, 32, "uid"))
            if tx_hash is None:
                self._wait_for_chain_time(attestation.issued_at)
        with self.sessions.begin() as session:
            session.execute(update(AttestationRow).where(AttestationRow.uid == uid.lower()).values(direct_tx=tx_hash))
        return tx_hash

    def anchoring_worker(self, **overrides: Any) -> AnchoringWorker:
        """A worker anchoring with the configured key (dev key 1 on the dev chain)."""
        options: dict[str, Any] = {
            "confirmations": self.settings.confirmations,
            "max_batch": self.settings.batch_max_size,
            "max_age": self.settings.batch_max_age_seconds,
            "fees": FeePolicy.from_settings(self.settings),
            "confirmation_mode": self.settings.confirmation_mode,
            "index": self.indexer.sync,  # the lease holder is the node's one indexer
        }
        if self.settings.anchor_keystore is not None:
            account = load_keystore(self.settings.anchor_keystore, self.settings.key_password)
        else:
            # The well-known dev key: every pass first asks the connected chain whether it
            # is a development chain (a worker made during an outage checks once it is back).
            w3 = self.deployment.w3
            options["guard"] = lambda: require_dev_chain(w3)
            account = dev_account(1)
        options.update(overrides)
        return AnchoringWorker(self.deployment, self.sessions, account, **options)
