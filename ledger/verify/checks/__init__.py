"""The checks, one module each, in the order a verdict runs them (SPEC §4).

Adding a check: write `checks/<name>.py` with a function `Context -> CheckResult`, and
add one line to REGISTRY. The policy's default mandatory set is every check here.
"""

from __future__ import annotations

from collections.abc import Callable

from ..context import Context
from ..model import CheckResult
from .anchoring import check_anchoring
from .completeness import check_completeness
from .custody import check_custody
from .identity import check_identity
from .integrity import check_integrity
from .licensing import check_licensing
from .prior_findings import check_prior_findings
from .status import check_status
from .watchlist import check_watchlist

REGISTRY: dict[str, Callable[[Context], CheckResult]] = {
    "integrity": check_integrity,
    "identity": check_identity,
    "anchoring": check_anchoring,
    "status": check_status,
    "custody": check_custody,
    "licensing": check_licensing,
    "watchlist": check_watchlist,
    "prior_findings": check_prior_findings,
    "completeness": check_completeness,
}
CHECKS: tuple[str, ...] = tuple(REGISTRY)
