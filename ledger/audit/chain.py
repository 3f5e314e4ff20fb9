"""Reading the chain for a replay: the registry's role history and the ledger's batch
sequence, direct records and revocations, from the two contracts' events, extended block
by block into a `ReplayState` an auditor can save and resume from; batches an earlier
replay accepted are re-read, so a reorganisation never rewrites history unnoticed."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from web3 import Web3

from ledger.chain.client import Deployment
from ledger.chain.logs import AdaptiveLogFetcher
from ledger.chain.manifest import Manifest
from ledger.hashing import hex32
from ledger.kinds import Kind
from ledger.registry_view import Checkpoint, RegistryView

from .report import Discrepancy, ReplayReport


@dataclass
class ChainBatch:
    index: int
    root: str
    previous_root: str
    count: int
    block: int
    time: int


@dataclass
class ReplayState:
    """What a replay has established from the chain, saved as a checkpoint to resume from:
    the next block to read, the registry history, the batch sequence, direct records,
    on-chain revocations, and the batches whose data was already checked."""

    next_block: int
    history: dict[str, list[Checkpoint]] = field(default_factory=dict)
    # The block of each checkpoint in `history` (same keys, same order): the store's copy is
    # compared only through the block its indexer has reached. A checkpoint saved before
    # blocks were kept reads as block 0 (always compared).
    history_blocks: dict[str, list[int]] = field(default_factory=dict)
    # The last block read and its hash: a resumed replay that finds another block at that
    # height knows the chain rewrote what it read (`reread_if_rewritten`).
    tip_block: int | None = None
    tip_hash: str | None = None
    batches: dict[int, ChainBatch] = field(default_factory=dict)
    direct: set[str] = field(default_factory=set)
    revocations: dict[str, set[str]] = field(default_factory=dict)
    checked_batches: set[int] = field(default_factory=set)

    def save(self, path: Path) -> None:
        data = {
            "nextBlock": self.next_block,
            "history": {a: [asdict(c) for c in cs] for a, cs in self.history.items()},
            "historyBlocks": self.history_blocks,
            "tipBlock": self.tip_block,
            "tipHash": self.tip_hash,
            "batches": [asdict(b) for b in self.batches.values()],
            "direct": sorted(self.direct),
            "revocations": {u: sorted(r) for u, r in self.revocations.items()},
            "checkedBatches": sorted(self.checked_batches),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ReplayState:
        """The state saved in `path`; raises ValueError for a file that does not hold one
        consistently (each registry checkpoint with its block)."""
        data = json.loads(path.read_text())
        history = {a: [Checkpoint(**c) for c in cs] for a, cs in data["history"].items()}
        blocks = {a: data.get("historyBlocks", {}).get(a, [0] * len(cs)) for a, cs in history.items()}
        if any(len(blocks[a]) != len(cs) for a, cs in history.items()):
            raise ValueError(f"{path}: the registry history and its blocks do not match (not a saved replay state)")
        return cls(
            next_block=data["nextBlock"],
            history=history,
            history_blocks=blocks,
            tip_block=data.get("tipBlock"),
            tip_hash=data.get("tipHash"),
            batches={b["index"]: ChainBatch(**b) for b in data["batches"]},
            direct=set(data["direct"]),
            revocations={u: set(r) for u, r in data["revocations"].items()},
            checked_batches=set(data["checkedBatches"]),
        )


def read_chain(deployment: Deployment, state: ReplayState, head: int) -> None:
    """Extend `state` with the registry and ledger events of blocks [state.next_block, head]."""
    manifest = deployment.manifest
    registry_events = {
        bytes.fromhex(str(e().topic)[2:]): e for e in (deployment.registry.events.EffectiveRolesChanged,)
    }
    ledger_events = {
        bytes.fromhex(str(e().topic)[2:]): e
        for e in (
            deployment.ledger.events.BatchAnchored,
            deployment.ledger.events.Attested,
            deployment.ledger.events.Revoked,
        )
    }
    history: dict[str, list[Checkpoint]] = defaultdict(list, state.history)
    history_blocks: dict[str, list[int]] = defaultdict(list, state.history_blocks)
    revocations: dict[str, set[str]] = defaultdict(set, state.revocations)
    block_times: dict[int, int] = {}
    if head < state.next_block:
        return
    fetcher = AdaptiveLogFetcher(deployment.w3, [manifest.registry, manifest.ledger])
    for _low, _high, logs in fetcher.fetch(state.next_block, head):
        for log in logs:
            topic = bytes(log["topics"][0])
            address = str(log["address"]).lower()
            if address == manifest.registry.lower() and topic in registry_events:
                args = registry_events[topic]().process_log(log)["args"]
                history[str(args["account"]).lower()].append(Checkpoint.from_event(args))
                history_blocks[str(args["account"]).lower()].append(int(log["blockNumber"]))
            elif address == manifest.ledger.lower() and topic in ledger_events:
                decoded = ledger_events[topic]().process_log(log)
                args = decoded["args"]
                if decoded["event"] == "Attested":
                    state.direct.add(hex32(bytes(args["uid"])))
                    if int(args["kind"]) == int(Kind.REVOCATION):
                        for ref in args["refs"]:
                            revocations[hex32(bytes(ref))].add(str(args["attester"]))
                    continue
                if decoded["event"] == "Revoked":
                    revocations[hex32(bytes(args["uid"]))].add(str(args["attester"]))
                    continue
                number = int(log["blockNumber"])
                if number not in block_times:
                    block_times[number] = int(deployment.w3.eth.get_block(number)["timestamp"])
                state.batches[int(args["index"])] = ChainBatch(
                    int(args["index"]),
                    hex32(bytes(args["root"])),
                    hex32(bytes(args["previousRoot"])),
                    int(args["count"]),
                    number,
                    block_times[number],
                )
    state.history = dict(history)
    state.history_blocks = dict(history_blocks)
    state.tip_block, state.tip_hash = head, _block_hash(deployment, head)
    state.revocations = dict(revocations)
    state.batches = dict(sorted(state.batches.items()))
    state.next_block = head + 1


def recheck_cached_batches(deployment: Deployment, state: ReplayState, report: ReplayReport) -> None:
    """Batches an earlier replay read (a checkpoint) must still hold their roots on chain.
    One that vanished or changed means a reorganisation rewrote history the auditor had
    accepted: reported as REORGANISED (never silently trusted), forgotten, and its blocks
    read again."""
    ledger = deployment.ledger
    reread_from: int | None = None
    for index, batch in list(state.batches.items()):
        root = hex32(bytes(ledger.functions.batchRoot(index).call()))
        if root == batch.root:
            continue
        now_holds = "nothing" if int(root, 16) == 0 else root
        report.discrepancies.append(
            Discrepancy(
                "REORGANISED",
                f"batch {index} was read anchored with root {batch.root} in block {batch.block}; "
                f"the chain now holds {now_holds} at that index (a reorganisation rewrote history)",
                batch=index,
                evidence={"replayed": batch.root, "block": batch.block, "onChain": root},
            )
        )
        del state.batches[index]
        state.checked_batches.discard(index)
        reread_from = batch.block if reread_from is None else min(reread_from, batch.block)
    if reread_from is not None:
        state.next_block = min(state.next_block, reread_from)


def reread_if_rewritten(deployment: Deployment, state: ReplayState, report: ReplayReport) -> None:
    """When the block an earlier replay read last is no longer the chain's block at that
    height, a reorganisation rewrote blocks it read (a batch, a registry change, a
    revocation, or only empty blocks): everything but the batches (each re-checked against
    its root first, `recheck_cached_batches`) is read again from the deployment block, so
    nothing the reorganisation dropped stays in force and nothing it kept counts twice."""
    if state.tip_block is None or state.tip_hash is None:
        return
    tip = state.tip_block
    now_there = _block_hash(deployment, tip)
    if now_there == state.tip_hash:
        return
    if not any(d.kind == "REORGANISED" for d in report.discrepancies):
        report.discrepancies.append(
            Discrepancy(
                "REORGANISED",
                f"block {tip}, the last an earlier replay read, is no longer the chain's block at that height "
                "(a reorganisation rewrote blocks it had read); read again from the deployment block",
                evidence={"block": tip, "replayed": state.tip_hash, "onChain": now_there},
            )
        )
    state.next_block = deployment.manifest.deployment_block
    state.history, state.history_blocks = {}, {}
    state.revocations, state.direct = {}, set()


def _block_hash(deployment: Deployment, number: int) -> str | None:
    block = deployment.w3.eth.get_block(number)
    return hex32(bytes(block["hash"])) if block and block.get("hash") is not None else None


class ReplayedRegistry(RegistryView):
    """The registry view over histories rebuilt from chain events (no database)."""

    def __init__(self, histories: dict[str, list[Checkpoint]]) -> None:
        self._histories = histories

    def history(self, account: str) -> list[Checkpoint]:
        return self._histories.get(account.lower(), [])


def replay_deployment(manifest: Manifest, rpc_url: str) -> Deployment:
    return Deployment(Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30})), manifest)
