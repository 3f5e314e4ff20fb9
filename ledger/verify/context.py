"""What every check reads: the evidence, the chain snapshot, the policy, and the records
earlier checks found untrustworthy — plus the small helpers several checks share.

A check never mutates the context: it returns a `CheckResult`, whose `distrusts` names
the records later checks must ignore; the engine builds the next context from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ledger.chain.view import ChainSnapshot, ChainView
from ledger.completeness import Watermark
from ledger.eip712 import Domain
from ledger.fields import exact_quantity
from ledger.kinds import Kind
from ledger.licence_output import LicenceOutputs
from ledger.reasons import Reason
from ledger.signatures import SignatureChecker

from .evidence import Evidence, Record, walk_history
from .model import CheckResult, CheckStatus, Finding
from .policy import VerificationPolicy

CUSTODY_KINDS = (Kind.PRODUCTION, Kind.TRANSFER)


class ChainFactsUnavailable(Exception):
    """The chain could not be read, so a fact a check needs is unknown."""


@dataclass(frozen=True)
class Context:
    """The inputs of one check. Immutable: what a check learns that later checks need
    (records not to trust) travels in its result, and the engine makes the next context."""

    evidence: Evidence
    domain: Domain
    chain: ChainView | None
    snapshot: ChainSnapshot | None  # None: the chain could not be read (see chain_error)
    checker: SignatureChecker
    policy: VerificationPolicy
    now: int
    chain_error: str = ""
    ancestors: frozenset[str] = frozenset()  # the shipment's history (it and all it rests on)
    untrusted: frozenset[str] = frozenset()  # records earlier checks distrusted
    completeness: Watermark | None = None  # the node's copy of the ledger; None: only the evidence
    completeness_error: str = ""  # why the watermark could not be measured
    # The node's running view of productions under each licence (None: only the evidence).
    licence_outputs: LicenceOutputs | None = None
    # Results of pure functions of this verification's inputs, computed once and shared by
    # checks (the licensing analysis feeds the watch-list check). Never a channel between checks.
    memo: dict[str, Any] = field(default_factory=dict, compare=False)

    def trusted(self, record: Record) -> bool:
        return record.uid not in self.untrusted

    def chain_block_time(self, block: int) -> int:
        if self.chain is None:
            raise ChainFactsUnavailable("no chain configured")
        return self.chain.block_time(block)

    def require_snapshot(self) -> ChainSnapshot:
        if self.snapshot is None:
            raise ChainFactsUnavailable(self.chain_error or "no chain configured")
        return self.snapshot

    def revocations_of(self, record: Record, *, anchored: bool = False) -> list[str]:
        """Revocations of `record` by its own attester, from the evidence and the chain.
        Only a record's attester may revoke it; anyone else's revocation is not counted.
        With `anchored`, a revocation from the evidence counts only once its anchor is on
        chain with the confirmations the policy asks (as the anchoring check requires of
        the history): for a revocation that lifts a flag, where counting one the chain
        does not hold would not fail closed. Raises ChainFactsUnavailable when the
        chain's revocations could not be read: an unknown revocation status is never
        "not revoked"."""
        # Imported here: the checks import this module.
        from .checks.anchoring import anchor_problem, unconfirmed

        snapshot = self.require_snapshot()
        attester = record.attester.lower()
        found = [
            r.uid
            for r in self.evidence.children(record.uid)
            if r.kind is Kind.REVOCATION
            and self.trusted(r)
            and r.attester.lower() == attester
            and (not anchored or anchor_problem(self, snapshot, r) is None)
        ]
        block = snapshot.revocation_block(record.uid, attester)
        if block is not None and (not anchored or unconfirmed(self, snapshot, block, "", record.uid) is None):
            found.append(f"on-chain revocation by {record.attester}")
        return found


def ancestors(evidence: Evidence) -> frozenset[str]:
    """The uids of the shipment's history that the evidence holds."""
    return walk_history(evidence)[0]


def undisclosed(record: Record) -> int:
    """How many committed fields of `record` the evidence does not disclose."""
    return len(record.disclosure.field_hashes) - len(record.disclosure.fields)


def custody_inputs(ctx: Context, record: Record) -> list[str]:
    """The custody records (productions, transfers) `record` hands on; acceptances resolve
    to the transfer they accept. Unknown references are returned as-is (gaps)."""
    inputs = []
    for ref in record.refs:
        target = ctx.evidence.records.get(ref)
        if target is None:
            inputs.append(ref)
        elif target.kind is Kind.TRANSFER_ACCEPTANCE:
            inputs.extend(target.refs)
        elif target.kind in CUSTODY_KINDS:
            inputs.append(ref)
    return inputs


def holder_after(record: Record) -> str:
    if record.kind is Kind.TRANSFER:
        return str(record.field("to", "")).lower()
    return record.attester.lower()


def quantity(record: Record) -> Fraction | None:
    """The record's quantity as an exact number, or None when absent or not allowed."""
    return exact_quantity(record.field("quantity"))


def undisclosed_finding(record: Record, name: str) -> Finding:
    return Finding(
        Reason.FIELD_UNDISCLOSED,
        f"the {record.kind.type_name}'s {name} is not disclosed in the evidence, so it cannot be checked",
        (record.uid,),
    )


def number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def covers_goods(classes: Any, goods: Any) -> bool:
    return (
        isinstance(classes, list)
        and isinstance(goods, str)
        and any(isinstance(c, str) and goods.startswith(c) for c in classes)
    )


def outcome(
    name: str, findings: list[Finding], notices: list[Finding] | None = None, distrusts: frozenset[str] = frozenset()
) -> CheckResult:
    """A check's result: INVALID with findings, else VALID."""
    status = CheckStatus.INVALID if findings else CheckStatus.VALID
    return CheckResult(name, status, findings, notices=list(notices or ()), distrusts=distrusts)
