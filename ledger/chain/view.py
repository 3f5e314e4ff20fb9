"""The chain's public facts, mirrored in memory from the two contracts' logs.

The verifier trusts the chain and nothing else (SPEC §4), so every fact a verdict or an
ingest decision rests on — batch roots and their blocks, direct records, on-chain
revocations, and the registry's role history — is read here from the logs of the
manifest's two contract addresses, never from the node's database (which an
administrator can edit).

Logs are read incrementally through the adaptive log fetcher: blocks with at least
`cache_depth` confirmations are read once and kept (only a reorganisation deeper than
the confirmation policy could undo them, and the policy already counts on that not
happening); the shallower tail is re-read whenever the head moves. A `ChainSnapshot`
is one consistent answer for one head. Any failure to read raises: callers turn it
into an ERROR, never into "nothing found".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from web3.exceptions import TransactionNotFound

from ledger.hashing import hex32, keccak
from ledger.kinds import Kind
from ledger.registry_view import Checkpoint, RegistryView
from ledger.trouble import MEANWHILE, chain_trouble, endpoint_of

from .client import ChainUnavailable, Deployment
from .logs import AdaptiveLogFetcher

log = logging.getLogger(__name__)


@dataclass
class ChainFacts:
    """Facts read from a range of blocks (append-only while reading in block order)."""

    batches: dict[int, tuple[str, int]] = field(default_factory=dict)  # index -> (root, block)
    batch_counts: dict[int, int] = field(default_factory=dict)  # index -> attestations in it
    direct: dict[str, tuple[str, int]] = field(default_factory=dict)  # uid -> (attester, block)
    direct_tx: dict[str, str] = field(default_factory=dict)  # uid -> hash of the transaction recording it
    # uid -> revoker -> block of its first revocation of it
    revocations: defaultdict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    checkpoints: defaultdict[str, list[Checkpoint]] = field(default_factory=lambda: defaultdict(list))
    participant_ids: dict[str, str] = field(default_factory=dict)  # account -> participant id (admission, rotation)
    names: dict[str, str] = field(default_factory=dict)  # participant id -> published name (keccak checked)


def append_checkpoint(history: list[Checkpoint], checkpoint: Checkpoint) -> None:
    """Add a registry checkpoint in event order. A checkpoint for an earlier or equal time
    than the last ones rewrites the history from that time on (the registry may rewrite
    the current second when several changes land in it): entries after it are dropped,
    and among equal times the last one wins when read."""
    while history and history[-1].since > checkpoint.since:
        history.pop()
    history.append(checkpoint)


@dataclass(frozen=True)
class ChainSnapshot:
    """The chain's facts as of block `head` (confirmed facts plus the unconfirmed tail)."""

    head: int
    head_time: int
    confirmed: ChainFacts
    tail: ChainFacts
    max_signature_age: int
    # account -> its registry history as of this snapshot, merged once: a verdict asks for
    # each signer's standing once per record it signed. Kept from the first question, so
    # one snapshot answers one history even if the view reads newer confirmed blocks into
    # the facts it shares with later snapshots meanwhile.
    _histories: dict[str, list[Checkpoint]] = field(default_factory=dict, compare=False, repr=False)

    def batch(self, index: int) -> tuple[str, int] | None:
        """(root, block) of batch `index` as emitted by the ledger contract, or None."""
        return self.tail.batches.get(index) or self.confirmed.batches.get(index)

    def batch_count(self, index: int) -> int | None:
        """How many attestations batch `index` holds, as its BatchAnchored event says."""
        found = self.tail.batch_counts.get(index)
        return found if found is not None else self.confirmed.batch_counts.get(index)

    def confirmed_batches(self, confirmations: int) -> int:
        """How many batches (indices 0..n-1: the sequence is gap-free) have at least
        `confirmations` confirmations at this head."""
        total = len(self.confirmed.batches) + sum(1 for i in self.tail.batches if i not in self.confirmed.batches)
        low, high = 0, total  # blocks never decrease along the sequence: binary search
        while low < high:
            middle = (low + high) // 2
            found = self.batch(middle)
            if found is not None and self.confirmations(found[1]) >= confirmations:
                low = middle + 1
            else:
                high = middle
        return low

    def direct(self, uid: str) -> tuple[str, int] | None:
        """(attester, block) of a directly recorded attestation, or None."""
        return self.tail.direct.get(uid) or self.confirmed.direct.get(uid)

    def direct_tx(self, uid: str) -> str | None:
        """The hash of the transaction that recorded `uid` directly, or None."""
        return self.tail.direct_tx.get(uid) or self.confirmed.direct_tx.get(uid)

    def confirmed_direct(self, confirmations: int) -> dict[str, tuple[str, int]]:
        """Every directly recorded attestation with at least `confirmations`
        confirmations at this head: uid -> (attester, block)."""
        found = {**self.confirmed.direct, **self.tail.direct}
        return {uid: fact for uid, fact in found.items() if self.confirmations(fact[1]) >= confirmations}

    def revocation_block(self, uid: str, attester: str) -> int | None:
        """The block of `attester`'s first on-chain revocation of `uid`, or None."""
        found = self.confirmed.revocations.get(uid, {}).get(attester)
        return found if found is not None else self.tail.revocations.get(uid, {}).get(attester)

    def revoked_uids(self) -> set[str]:
        """Every UID revoked on chain by anyone (`revocation_block` says by whom, when)."""
        return self.confirmed.revocations.keys() | self.tail.revocations.keys()

    def registry_history(self, account: str) -> list[Checkpoint]:
        """The account's registry checkpoints as of this snapshot (the same list each time:
        not to be changed by the caller)."""
        key = account.lower()
        history = self._histories.get(key)
        if history is None:
            history = list(self.confirmed.checkpoints.get(key, ()))
            for checkpoint in self.tail.checkpoints.get(key, ()):
                append_checkpoint(history, checkpoint)
            self._histories[key] = history
        return history

    def confirmations(self, block: int) -> int:
        return self.head - block + 1

    def participant_name(self, account: str) -> str | None:
        """The name `account`'s participant was admitted under, as published on chain
        (`ParticipantNamed`, whose keccak256 equals the participant id the registry holds
        for the account), or None when no such name was published."""
        key = account.lower()
        participant = self.tail.participant_ids.get(key) or self.confirmed.participant_ids.get(key)
        if participant is None:
            return None
        return self.tail.names.get(participant) or self.confirmed.names.get(participant)


class ChainView:
    """Thread-safe mirror of the chain's facts for one deployment."""

    def __init__(self, deployment: Deployment, cache_depth: int = 2) -> None:
        self.deployment = deployment
        self.cache_depth = max(1, cache_depth)
        self._lock = threading.RLock()
        self._confirmed = ChainFacts()
        self._scanned_to = deployment.manifest.deployment_block - 1
        self._scanned_hash: str | None = None  # hash of block `_scanned_to` when it was read
        self._final_blocks: dict[tuple[str, int], int | None] = {}
        self._snapshot: ChainSnapshot | None = None
        self._head: tuple[float, int] = (float("-inf"), -1)
        self._block_times: dict[int, int] = {}
        self._tx_checks: dict[tuple[str, int], bool] = {}
        self._max_signature_age: int | None = None
        ledger, registry = deployment.ledger, deployment.registry
        self._events = {
            _topic(e): e
            for e in (
                ledger.events.BatchAnchored(),
                ledger.events.Attested(),
                ledger.events.Revoked(),
                registry.events.EffectiveRolesChanged(),
                registry.events.ParticipantAdmitted(),
                registry.events.KeyRotated(),
                registry.events.ParticipantNamed(),
            )
        }

    @property
    def ledger_address(self) -> str:
        return self.deployment.manifest.ledger

    @property
    def last_snapshot(self) -> ChainSnapshot | None:
        """The most recent snapshot read, however old (None before the first read)."""
        return self._snapshot

    def head(self, max_age: float = 0.25) -> int:
        """The chain head, re-read at most every `max_age` seconds. A slightly old head can
        only under-count confirmations: the safe direction for a fail-closed verdict."""
        now = time.monotonic()
        if now - self._head[0] > max_age:
            self._head = (now, int(self.deployment.w3.eth.block_number))
        return self._head[1]

    def snapshot(self, max_age: float = 0.25) -> ChainSnapshot:
        """The facts as of the current head (re-read at most every `max_age` seconds).

        Raises `ChainUnavailable` with one sentence for an officer (`ledger.trouble`)
        when the chain cannot be read, never the RPC library's own exception."""
        try:
            return self._read_snapshot(max_age)
        except ChainUnavailable as exc:
            if MEANWHILE in str(exc):
                raise
            raise ChainUnavailable(chain_trouble(exc, endpoint_of(self.deployment.w3))) from exc
        except Exception as exc:  # whatever the RPC library raised: the chain could not be read
            raise ChainUnavailable(chain_trouble(exc, endpoint_of(self.deployment.w3))) from exc

    def _read_snapshot(self, max_age: float) -> ChainSnapshot:
        head = self.head(max_age)
        with self._lock:
            if self._snapshot is not None and self._snapshot.head == head:
                return self._snapshot
            self._forget_if_reorganised()
            confirmed_to = head - self.cache_depth + 1
            if confirmed_to > self._scanned_to:
                self._scan(self._scanned_to + 1, confirmed_to, self._confirmed)
                self._scanned_to = confirmed_to
                self._scanned_hash = self._block_hash(confirmed_to)
            tail = ChainFacts()
            if head > self._scanned_to:
                self._scan(self._scanned_to + 1, head, tail)
            if self._max_signature_age is None:
                self._max_signature_age = int(self.deployment.ledger.functions.maxSignatureAge().call())
            self._snapshot = ChainSnapshot(head, self.block_time(head), self._confirmed, tail, self._max_signature_age)
            return self._snapshot

    def _forget_if_reorganised(self) -> None:
        """Confirmed facts are kept, but not blindly: when the last block they were read
        up to is no longer the chain's block at that height, a reorganisation deeper than
        the confirmation depth happened; everything is read again (one block read per new
        head), so a verdict never rests on an anchor the chain no longer holds."""
        if self._scanned_hash is None or self._scanned_to < self.deployment.manifest.deployment_block:
            return
        if self._block_hash(self._scanned_to) != self._scanned_hash:
            log.error(
                "the chain reorganised below block %d (deeper than the confirmations): reading it again",
                self._scanned_to,
            )
            self._confirmed = ChainFacts()
            self._scanned_to = self.deployment.manifest.deployment_block - 1
            self._scanned_hash = None
            self._tx_checks.clear()
            self._block_times.clear()

    def _block_hash(self, number: int) -> str | None:
        try:
            block = self.deployment.w3.eth.get_block(number)
        except Exception:  # noqa: BLE001 - no such block (the chain is shorter now): not the block we read
            return None
        return "0x" + bytes(block["hash"]).hex()

    def snapshot_covering(self, at: int, *, force: bool = False) -> ChainSnapshot:
        """A snapshot whose head is at or after unix time `at` if the chain has one: a
        participant admitted a moment ago must be known to the ingest that follows. The
        head is re-read at most every 50 ms for that (ingest at thousands a second must not
        ask the chain each time), or at once with `force`; logs are read again only when
        the head moved."""
        snapshot = self.snapshot()
        if force or at >= snapshot.head_time:
            snapshot = self.snapshot(max_age=0 if force else 0.05)
        return snapshot

    def block_time(self, number: int) -> int:
        cached = self._block_times.get(number)
        if cached is None:
            cached = int(self.deployment.w3.eth.get_block(number)["timestamp"])
            if len(self._block_times) > 100_000:
                self._block_times.clear()
            self._block_times[number] = cached
        return cached

    def final_block(self, mode: str, head: int) -> int | None:
        """The number of the chain's `safe` or `finalized` block as of `head` (cached per
        head), or None when the chain offers no such tag (then confirmations count by depth)."""
        key = (mode, head)
        if key not in self._final_blocks:
            try:
                number: int | None = int(self.deployment.w3.eth.get_block(mode)["number"])  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a chain without the tag: by depth
                number = None
            if len(self._final_blocks) > 64:
                self._final_blocks.clear()
            self._final_blocks[key] = number
        return self._final_blocks[key]

    def tx_emitted_by_ledger(self, tx_hash: str, index: int) -> bool | None:
        """True when transaction `tx_hash` emitted BatchAnchored(index) from the ledger
        contract, False when it did not, None when the chain holds no such transaction
        (never sent, or reorganised away)."""
        key = (tx_hash.lower(), index)
        if key in self._tx_checks:
            return self._tx_checks[key]
        try:
            receipt = self.deployment.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        topic = _topic(self.deployment.ledger.events.BatchAnchored())
        found = any(
            str(log["address"]).lower() == self.ledger_address.lower()
            and bytes(log["topics"][0]) == topic
            and int.from_bytes(bytes(log["topics"][1]), "big") == index
            for log in receipt["logs"]
        )
        if self.head() - int(receipt["blockNumber"]) + 1 >= self.cache_depth:
            self._tx_checks[key] = found
        return found

    def verify_confirmed(self, limit: int = 16) -> list[tuple[int, str, str]]:
        """Re-read `batchRoot(i)` for the latest `limit` cached confirmed batches. Cached
        facts are kept forever, so a reorganisation deeper than `cache_depth` would go
        unseen: on any difference the whole cache is dropped (read again on the next
        snapshot) and the differences are returned as (index, cached root, chain root)."""
        with self._lock:
            cached = sorted(self._confirmed.batches.items())[-limit:] if limit > 0 else []
        ledger = self.deployment.ledger
        changed = [
            (index, root, now)
            for index, (root, _block) in cached
            if (now := hex32(bytes(ledger.functions.batchRoot(index).call()))) != root
        ]
        if changed:
            with self._lock:
                self._confirmed = ChainFacts()
                self._scanned_to = self.deployment.manifest.deployment_block - 1
                self._snapshot = None
                self._tx_checks.clear()
        return changed

    # ------------------------------------------------------------------ reading

    def _scan(self, start: int, end: int, into: ChainFacts) -> None:
        manifest = self.deployment.manifest
        fetcher = AdaptiveLogFetcher(self.deployment.w3, [manifest.ledger, manifest.registry])
        ledger_address, registry_address = manifest.ledger.lower(), manifest.registry.lower()
        for _low, _high, logs in fetcher.fetch(start, end):
            for log in logs:
                event = self._events.get(bytes(log["topics"][0])) if log["topics"] else None
                if event is None:
                    continue
                address = str(log["address"]).lower()
                name = event.event_name
                if (name in _REGISTRY_EVENTS) != (address == registry_address):
                    continue  # an event of one contract's ABI emitted by the other: not a fact
                if address not in (ledger_address, registry_address):
                    continue
                args = event.process_log(log)["args"]
                _apply(name, args, int(log["blockNumber"]), into)
                if name == "Attested":
                    into.direct_tx.setdefault(hex32(bytes(args["uid"])), hex32(bytes(log["transactionHash"])))


_REGISTRY_EVENTS = frozenset({"EffectiveRolesChanged", "ParticipantAdmitted", "KeyRotated", "ParticipantNamed"})


def _apply(name: str, args: Any, block: int, into: ChainFacts) -> None:
    if name == "BatchAnchored":
        index = int(args["index"])
        if index not in into.batches:
            into.batches[index] = (hex32(bytes(args["root"])), block)
            into.batch_counts[index] = int(args["count"])
    elif name == "Attested":
        uid, attester = hex32(bytes(args["uid"])), str(args["attester"]).lower()
        into.direct.setdefault(uid, (attester, block))
        if int(args["kind"]) == int(Kind.REVOCATION):
            for ref in args["refs"]:
                into.revocations[hex32(bytes(ref))].setdefault(attester, block)
    elif name == "Revoked":
        into.revocations[hex32(bytes(args["uid"]))].setdefault(str(args["attester"]).lower(), block)
    elif name == "EffectiveRolesChanged":
        append_checkpoint(into.checkpoints[str(args["account"]).lower()], Checkpoint.from_event(args))
    elif name == "ParticipantAdmitted":
        into.participant_ids[str(args["account"]).lower()] = hex32(bytes(args["participantId"]))
    elif name == "KeyRotated":
        into.participant_ids[str(args["newKey"]).lower()] = hex32(bytes(args["participantId"]))
    elif name == "ParticipantNamed":
        participant, text = hex32(bytes(args["participantId"])), str(args["name"])
        # The contract refuses any other name; checked again here, so a name shown as
        # the participant's is always the preimage of its on-chain id.
        if hex32(keccak(text.encode())) == participant:
            into.participant_ids.setdefault(str(args["account"]).lower(), participant)
            into.names[participant] = text


def _topic(event: Any) -> bytes:
    return bytes.fromhex(str(event.topic).removeprefix("0x"))


class ChainRegistry(RegistryView):
    """Registry answers from the chain's own role history (`ChainView`), not the store.

    While the chain cannot be read, answers come from the last snapshot read from it
    (stale but chain-sourced), so ingest keeps accepting through an outage; with no
    snapshot at all, from `fallback` (the store's indexed copy). Verification never
    uses this class: it reads one snapshot per verdict and fails closed without it.
    """

    def __init__(self, view: ChainView, fallback: RegistryView | None = None) -> None:
        self._view = view
        self._fallback = fallback

    def invalidate(self) -> None:
        """Nothing to forget: every answer reads the latest snapshot."""
        if self._fallback is not None:
            self._fallback.invalidate()

    def refresh(self, needed_time: int, *, force: bool = False) -> None:
        """Make sure the history covers unix time `needed_time` if the chain has reached it
        (with `force`, read the newest block now)."""
        self._view.snapshot_covering(needed_time, force=force)

    def history(self, account: str) -> list[Checkpoint]:
        try:
            snapshot: ChainSnapshot | None = self._view.snapshot()
        except Exception:  # noqa: BLE001 - chain unreachable: the last chain-read snapshot, if any
            snapshot = self._view.last_snapshot
        if snapshot is not None:
            return snapshot.registry_history(account)
        if self._fallback is None:
            raise RuntimeError("the registry has not been read from the chain yet and the chain is unreachable")
        return self._fallback.history(account)


class RegistryAt(RegistryView):
    """Registry answers from one snapshot (one verdict reads one consistent history)."""

    def __init__(self, snapshot: ChainSnapshot) -> None:
        self._snapshot = snapshot

    def invalidate(self) -> None:
        """A snapshot never changes."""

    def history(self, account: str) -> list[Checkpoint]:
        return self._snapshot.registry_history(account)
