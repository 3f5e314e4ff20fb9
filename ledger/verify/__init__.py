"""Customs verification: one fail-closed verdict for a shipment, with findings and a risk score.

Layout: `evidence` gathers a shipment's records (from the store or a bundle);
`engine` runs the checks registered in `checks/` (one module per check) over a
`context`; `policy` decides the verdict; `risk` scores it; `service` is the entry
point for a shipment in the store or a presented bundle; `model` holds the results.
"""

from .engine import verify_evidence
from .model import CheckResult, CheckStatus, Finding, Verdict, VerificationResult
from .policy import VerificationPolicy

__all__ = [
    "CheckResult",
    "CheckStatus",
    "Finding",
    "Verdict",
    "VerificationPolicy",
    "VerificationResult",
    "verify_evidence",
]
