"""Check 3, anchoring: each record of the history is in a batch whose root the ledger
contract holds, or recorded directly, with enough confirmations."""

from __future__ import annotations

from typing import Any

from ledger.chain.view import ChainSnapshot
from ledger.hashing import parse_hex
from ledger.merkle import consistent_root, leaf_hash, path_from_nodes, verify_proof
from ledger.reasons import Reason

from ..context import Context, outcome
from ..evidence import Record
from ..model import CheckResult, Finding


def check_anchoring(ctx: Context) -> CheckResult:
    snapshot = ctx.require_snapshot()
    findings: list[Finding] = []
    for uid in sorted(ctx.ancestors):
        record = ctx.evidence.records[uid]
        finding = anchor_problem(ctx, snapshot, record)
        if finding is not None:
            findings.append(finding)
    return outcome("anchoring", findings)


def unconfirmed(ctx: Context, snapshot: ChainSnapshot, block: int, what: str, uid: str) -> Finding | None:
    """A finding unless `block` is final under the policy: at or below the chain's `safe`
    / `finalized` block when the policy counts by tag (and the chain offers it), else at
    least `confirmations` blocks deep."""
    mode = ctx.policy.confirmation_mode
    if mode != "depth" and ctx.chain is not None:
        final = ctx.chain.final_block(mode, snapshot.head)
        if final is not None:
            if block > final:
                return Finding(
                    Reason.ANCHOR_UNCONFIRMED,
                    f"{what} is in block {block}; the chain's {mode} block is {final}",
                    (uid,),
                )
            return None
    confirmations = ctx.policy.confirmations
    have = snapshot.confirmations(block)
    if have < confirmations:
        return Finding(Reason.ANCHOR_UNCONFIRMED, f"{what} has {have} of {confirmations} confirmations", (uid,))
    return None


def anchor_problem(ctx: Context, snapshot: ChainSnapshot, record: Record) -> Finding | None:
    """Why `record`'s anchor is not on chain with the confirmations the policy asks, or None."""
    anchor = record.anchor
    if not anchor:
        return Finding(Reason.NOT_ANCHORED, "not yet in an anchored batch", (record.uid,))
    if anchor.get("type") == "direct":
        direct = snapshot.direct(record.uid)
        if direct is None or direct[0] != record.attester.lower():
            return Finding(Reason.NOT_ANCHORED, "no direct record of it at the ledger contract", (record.uid,))
        return unconfirmed(ctx, snapshot, direct[1], "its direct record", record.uid)
    index, root, proof = anchor.get("batchIndex"), anchor.get("root"), anchor.get("proof") or []
    if not isinstance(index, int) or not isinstance(root, str) or not isinstance(proof, list):
        return Finding(Reason.NOT_ANCHORED, "batch sealed but not yet anchored", (record.uid,))
    if anchor.get("txHash") and ctx.chain is not None:
        emitted = ctx.chain.tx_emitted_by_ledger(str(anchor["txHash"]), index)
        if emitted is None:
            return Finding(
                Reason.NOT_ANCHORED,
                f"the anchoring transaction {anchor['txHash']} is not on chain (never mined, or reorganised away)",
                (record.uid,),
            )
        if not emitted:
            return Finding(
                Reason.WRONG_CONTRACT,
                f"transaction {anchor['txHash']} did not anchor batch {index} at the "
                f"ledger contract {ctx.chain.ledger_address}",
                (record.uid,),
            )
    on_chain = snapshot.batch(index)
    if on_chain is None or on_chain[0] != root.lower():
        return Finding(Reason.NOT_ANCHORED, f"batch {index} root {root} is not on chain", (record.uid,))
    proven = _proves(root, record.uid, proof) if record.kept is None else _kept_proves(root, record.uid, *record.kept)
    if not proven:
        return Finding(Reason.NOT_ANCHORED, f"the inclusion proof does not lead to batch {index}'s root", (record.uid,))
    return unconfirmed(ctx, snapshot, on_chain[1], f"batch {index}", record.uid)


# uid -> (root, proof) that `verify_proof` found to lead from the uid's leaf to the root:
# a pure function of those three, remembered so that a record in many verdicts (a licence,
# a rights holder's asset) is not hashed up its batch's tree again each time. Bounded.
_PROVEN: dict[str, tuple[str, tuple[object, ...]]] = {}
_PROVEN_MAX = 8192


def _proves(root: str, uid: str, proof: list[object]) -> bool:
    """True when `proof` leads from the leaf of `uid` to `root` (hex strings, as an anchor
    holds them; any that is not 32 bytes of 0x-hex makes it false)."""
    kept = _PROVEN.get(uid)
    if kept is not None and kept[0] == root and kept[1] == tuple(proof):
        return True
    try:
        ok = verify_proof(parse_hex(root, 32, "root"), parse_hex(uid, 32, "uid"), [_bytes32(p) for p in proof])
    except ValueError:
        return False
    if ok:
        if len(_PROVEN) >= _PROVEN_MAX:
            _PROVEN.clear()
        _PROVEN[uid] = (root, tuple(proof))
    return ok


# A batch's tree as the store kept it (its bytes: the key) -> [hashes spent proving its
# leaves one path at a time, its `merkle.consistent_root` or _UNCHECKED]. The root is a
# pure function of the key, so a tree whose every inner node hashes up to the root the
# chain holds proves each of its leaves without a path being hashed again. Keyed on the
# very bytes checked: a tree read differently (a row edited since) is other bytes, checked
# afresh. The whole tree (one hash per inner node) is checked only once its leaves have
# cost as much one path at a time (rent or buy): never more than twice the hashing of
# checking each path, however the trees come and go. Bounded as the kept trees
# themselves (`Ledger._batch_nodes`); emptied when full.
_UNCHECKED = b"unchecked"
_TREES: dict[bytes, list[Any]] = {}
KEPT_TREES = 256  # as many as `Ledger._batch_nodes` keeps


def check_kept_tree(nodes: bytes) -> bytes | None:
    """`merkle.consistent_root(nodes)`, computed once per process for the same bytes (the
    node's warm-up checks its newest batches' trees before any verification)."""
    state = _tree_state(nodes)
    if state[1] is _UNCHECKED:
        state[1] = consistent_root(nodes)
    root: bytes | None = state[1]
    return root


def _tree_state(nodes: bytes) -> list[Any]:
    state = _TREES.get(nodes)
    if state is None:
        if len(_TREES) >= KEPT_TREES:
            _TREES.clear()
        state = _TREES[nodes] = [0, _UNCHECKED]
    return state


def _kept_proves(root: str, uid: str, nodes: bytes, leaf: int) -> bool:
    """True when node `leaf` of the batch's kept tree `nodes` is a leaf position holding the
    leaf of `uid`, and the path from it leads to `root` (hex, as an anchor holds it): at
    once when the whole tree was found to hash up to `root` (every such path then does),
    else by hashing that one path, as for a proof a bundle carries."""
    count = len(nodes) // 32
    try:
        wanted = parse_hex(root, 32, "root")
        uid_bytes = parse_hex(uid, 32, "uid")
    except ValueError:
        return False
    if not (count - (count + 1) // 2 <= leaf < count) or nodes[leaf * 32 : leaf * 32 + 32] != leaf_hash(uid_bytes):
        return False
    state = _tree_state(nodes)
    if state[1] is _UNCHECKED and state[0] >= count // 2:
        state[1] = consistent_root(nodes)  # its leaves have cost as much as the whole tree does
    if state[1] is not _UNCHECKED and state[1] == wanted:
        return True
    path = path_from_nodes(nodes, leaf)
    state[0] += len(path)
    return verify_proof(wanted, uid_bytes, path)


def _bytes32(value: object) -> bytes:
    """`parse_hex(value, 32, "proof")`, with the common well-formed case taken directly."""
    if type(value) is str and len(value) == 66 and value[:2] == "0x":
        return bytes.fromhex(value[2:])  # ValueError when not hexadecimal, as parse_hex
    return parse_hex(value, 32, "proof")
