"""The verification engine on evidence no honest ledger could hold."""

from __future__ import annotations

from ledger.reasons import Reason
from ledger.verify import CheckStatus, VerificationPolicy

from .conftest import ReliabilityRecorder
from .scenario import actor


def test_a_fabricated_custody_loop_is_reported_as_a_cycle(reliability: ReliabilityRecorder) -> None:
    """Real UIDs cannot form a loop (each would need the other's hash in advance), so a
    loop means fabricated evidence: the engine names it instead of recursing forever."""
    from ledger.eip712 import Attestation, Domain
    from ledger.kinds import Kind
    from ledger.payload import commit
    from ledger.verify.checks.custody import check_custody
    from ledger.verify.context import Context
    from ledger.verify.evidence import Evidence, Record

    a_uid, b_uid, ship_uid = ("0x" + c * 64 for c in "abc")
    domain = Domain(1, "0x" + "11" * 20)
    payload = commit({"lot": "L", "quantity": 1, "unit": "pcs", "to": actor("exporter").address}).disclosure

    def record(uid: str, kind: Kind, refs: list[str]) -> Record:
        attestation = Attestation(
            kind,
            actor("exporter").address,
            bytes(32),
            tuple(bytes.fromhex(r[2:]) for r in refs),
            payload.payload_hash,
            100,
            0,
        )
        return Record(uid, attestation, domain, bytes(65), payload, None, {})

    records = {
        ship_uid: record(ship_uid, Kind.SHIPMENT, [a_uid]),
        a_uid: record(a_uid, Kind.TRANSFER, [b_uid]),
        b_uid: record(b_uid, Kind.TRANSFER, [a_uid]),
    }
    # No checker (None): the custody check never checks a signature.
    ctx = Context(
        Evidence(ship_uid, records),
        domain,
        None,
        None,
        None,  # type: ignore[arg-type]
        VerificationPolicy(),
        0,
        ancestors=frozenset(records),
    )
    result = check_custody(ctx)
    assert result.status is CheckStatus.INVALID and {f.code for f in result.findings} == {Reason.CUSTODY_CYCLE}
    reliability.record("input", "custody cycle (fabricated evidence)", 1, "CUSTODY_CYCLE, no unbounded recursion")
