"""What verification reads from the chain: batch roots and their blocks, the contract that
emitted an anchor, direct records, and on-chain revocations.

Answers about blocks with at least `cache_depth` confirmations are cached: the contract
never changes a batch root once set, so only a reorganisation deeper than the
confirmation policy could change them, and the policy already counts on that not
happening. Everything shallower is read every time. Revocations are scanned
incrementally: confirmed blocks once, the unconfirmed tail on every call.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from web3.exceptions import TransactionNotFound

from ledger.chain.client import Deployment
from ledger.chain.logs import AdaptiveLogFetcher
from ledger.hashing import hex32
from ledger.kinds import Kind


@dataclass
class ChainView:
    deployment: Deployment
    cache_depth: int = 2
    _batches: dict[int, tuple[str, int]] = field(default_factory=dict)
    _tx_checks: dict[tuple[str, int], bool] = field(default_factory=dict)
    _revocations: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _revocations_scanned_to: int = -1
    _head: tuple[float, int] = (0.0, -1)

    @property
    def ledger_address(self) -> str:
        return self.deployment.manifest.ledger

    def head(self, max_age: float = 0.25) -> int:
        """The chain head, re-read at most every `max_age` seconds. A slightly old head can
        only under-count confirmations: the safe direction for a fail-closed verdict."""
        now = time.monotonic()
        if now - self._head[0] > max_age:
            self._head = (now, int(self.deployment.w3.eth.block_number))
        return self._head[1]

    def _confirmed(self, block: int, head: int | None = None) -> bool:
        return (self.head() if head is None else head) - block + 1 >= self.cache_depth

    def batch(self, index: int) -> tuple[str, int] | None:
        """(root, block number) of batch `index` at the ledger contract, or None."""
        cached = self._batches.get(index)
        if cached is not None:
            return cached
        ledger = self.deployment.ledger
        root = hex32(bytes(ledger.functions.batchRoot(index).call()))
        if int(root, 16) == 0:
            return None
        logs = ledger.events.BatchAnchored().get_logs(
            from_block=self.deployment.manifest.deployment_block, argument_filters={"index": index}
        )
        blocks = [int(entry["blockNumber"]) for entry in logs if hex32(bytes(entry["args"]["root"])) == root]
        if not blocks:
            return None
        answer = (root, blocks[0])
        if self._confirmed(blocks[0]):
            self._batches[index] = answer
        return answer

    def tx_emitted_by_ledger(self, tx_hash: str, index: int) -> bool:
        """True when transaction `tx_hash` emitted BatchAnchored(index) from the ledger contract."""
        key = (tx_hash.lower(), index)
        if key in self._tx_checks:
            return self._tx_checks[key]
        try:
            receipt = self.deployment.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        event = self.deployment.ledger.events.BatchAnchored()
        topic = bytes.fromhex(str(event.topic).removeprefix("0x"))
        found = any(
            str(log["address"]).lower() == self.ledger_address.lower()
            and bytes(log["topics"][0]) == topic
            and int.from_bytes(bytes(log["topics"][1]), "big") == index
            for log in receipt["logs"]
        )
        if self._confirmed(int(receipt["blockNumber"])):
            self._tx_checks[key] = found
        return found

    def direct_record(self, uid: str) -> tuple[str, int]:
        """(attester, revokedAt) of a directly recorded attestation (zero address if none)."""
        record = self.deployment.ledger.functions.getRecord(bytes.fromhex(uid.removeprefix("0x"))).call()
        return str(record[0]), int(record[2])

    def revocations(self) -> dict[str, set[str]]:
        """uid -> revokers: Revocation attestations recorded directly on chain, and direct
        records revoked through the contract's `revoke`.

        Confirmed blocks are scanned once and remembered; blocks above that (fewer
        confirmations than `cache_depth`) are read on every call, since a reorganisation
        may still remove them. With the head unchanged this asks the chain nothing."""
        head = self.head()
        confirmed_to = head - self.cache_depth + 1
        start = max(self._revocations_scanned_to + 1, self.deployment.manifest.deployment_block)
        if confirmed_to >= start:
            self._scan_revocations(start, confirmed_to, self._revocations)
            self._revocations_scanned_to = confirmed_to
        found = {uid: set(revokers) for uid, revokers in self._revocations.items()}
        tail_start = max(self._revocations_scanned_to + 1, self.deployment.manifest.deployment_block)
        if head >= tail_start:
            tail: dict[str, set[str]] = defaultdict(set)
            self._scan_revocations(tail_start, head, tail)
            for uid, revokers in tail.items():
                found.setdefault(uid, set()).update(revokers)
        return found

    def _scan_revocations(self, start: int, end: int, into: dict[str, set[str]]) -> None:
        ledger = self.deployment.ledger
        attested, revoked = ledger.events.Attested(), ledger.events.Revoked()
        attested_topic = bytes.fromhex(str(attested.topic).removeprefix("0x"))
        revoked_topic = bytes.fromhex(str(revoked.topic).removeprefix("0x"))
        fetcher = AdaptiveLogFetcher(self.deployment.w3, [self.ledger_address])
        for _low, _high, logs in fetcher.fetch(start, end):
            for log in logs:
                topic = bytes(log["topics"][0]) if log["topics"] else b""
                if topic == attested_topic:
                    args = attested.process_log(log)["args"]
                    if int(args["kind"]) == int(Kind.REVOCATION):
                        for ref in args["refs"]:
                            into[hex32(bytes(ref))].add(str(args["attester"]))
                elif topic == revoked_topic:
                    args = revoked.process_log(log)["args"]
                    into[hex32(bytes(args["uid"]))].add(str(args["attester"]))
