"""The verification policy (which checks must pass, confirmations, acceptance) and the
one rule that turns checks into a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import EVIDENCE_FAILURES, CheckResult, CheckStatus, Verdict


def _known_checks() -> tuple[str, ...]:
    from .checks import CHECKS

    return CHECKS


@dataclass(frozen=True)
class VerificationPolicy:
    """Policy knobs, with safe defaults. Built once from the settings (`from_settings`)
    and handed to every verification path, so no path can ignore one."""

    confirmations: int = 2
    require_acceptance: bool = False
    mandatory: frozenset[str] = field(default_factory=lambda: frozenset(_known_checks()))
    # "depth" (`confirmations` blocks) or the chain's "safe" / "finalized" block tag (by
    # depth where the chain offers no such tag).
    confirmation_mode: str = "depth"

    def __post_init__(self) -> None:
        unknown = set(self.mandatory) - set(_known_checks())
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(_known_checks())}")
        if self.confirmations < 1:
            raise ValueError(f"confirmations must be at least 1, got {self.confirmations}")
        if self.confirmation_mode not in ("depth", "safe", "finalized"):
            raise ValueError(f"confirmation mode must be depth, safe or finalized, got {self.confirmation_mode!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> VerificationPolicy:
        """The policy of `settings` (a `ledger.config.Settings`)."""
        return cls(
            settings.confirmations,
            settings.require_acceptance,
            frozenset(settings.mandatory_checks),
            settings.confirmation_mode,
        )


def decide(checks: list[CheckResult], policy: VerificationPolicy) -> Verdict:
    """The verdict. Fail-closed: VERIFIED needs every mandatory check present and VALID;
    an empty policy or an empty set of checks never verifies."""
    by_name = {c.name: c for c in checks}
    if not policy.mandatory or not checks:
        return Verdict.UNVERIFIABLE
    for name in policy.mandatory:
        check = by_name.get(name)
        if check is None or check.status in (CheckStatus.ERROR, CheckStatus.SKIPPED):
            return Verdict.UNVERIFIABLE
    codes = {f.code for c in checks for f in c.findings}
    if codes & EVIDENCE_FAILURES:
        return Verdict.UNVERIFIABLE
    if any(c.status is CheckStatus.INVALID for c in checks):
        return Verdict.FLAGGED
    return Verdict.VERIFIED
