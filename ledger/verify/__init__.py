"""Customs verification: one fail-closed verdict for a shipment, with findings and a risk score."""

from .engine import VerificationPolicy, verify_evidence
from .model import CheckResult, CheckStatus, Finding, Verdict, VerificationResult

__all__ = [
    "CheckResult",
    "CheckStatus",
    "Finding",
    "Verdict",
    "VerificationPolicy",
    "VerificationResult",
    "verify_evidence",
]
