"""What a replay reports: discrepancies, the report (JSON and a self-contained HTML page),
and a progress line for the terminal."""

from __future__ import annotations

import html
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Discrepancy:
    """One thing the data and the chain disagree on, under a stable kind (see the package)."""

    kind: str
    message: str
    uids: list[str] = field(default_factory=list)
    batch: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "uids": self.uids,
            "batch": self.batch,
            "evidence": self.evidence,
        }


def describe_deployment(deployment: dict[str, Any]) -> str:
    """The replayed deployment as a sentence: which contracts on which chain."""
    return (
        f"ledger contract {deployment.get('ledger')} and registry contract {deployment.get('registry')} "
        f"on chain {deployment.get('chainId')}"
    )


@dataclass
class ReplayReport:
    """Everything one replay found, over blocks [from_block, to_block]."""

    deployment: dict[str, Any]  # chainId, ledger, registry: the manifest replayed
    from_block: int
    to_block: int
    batches: list[dict[str, Any]] = field(default_factory=list)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    attestations: int = 0
    skipped: int = 0
    revoked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # How far the store's copy of the registry was compared (a replay of a store only):
    # the last block its indexer reached, and the chain head the replay read.
    store_registry: dict[str, Any] | None = None

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = defaultdict(int)
        for d in self.discrepancies:
            counts[d.kind] += 1
        return {
            "deployment": self.deployment,
            "deploymentText": describe_deployment(self.deployment),
            "blocks": [self.from_block, self.to_block],
            "summary": {
                "attestations": self.attestations,
                "skippedAlreadyChecked": self.skipped,
                "revoked": len(self.revoked),
                "batches": len(self.batches),
                "discrepancies": len(self.discrepancies),
                # How many discrepancies of each kind (PAYLOAD_ALTERED, ...): the sum is "discrepancies".
                "discrepanciesByKind": dict(sorted(counts.items())),
                "seconds": round(self.seconds, 2),
                "ratePerSecond": round(self.attestations / self.seconds, 1) if self.seconds else None,
            },
            "batches": self.batches,
            "revoked": self.revoked[:1000],
            "discrepancies": [d.to_json() for d in self.discrepancies],
            "storeRegistry": self.store_registry,
        }


class Progress:
    """A progress line on stderr with rate and ETA (silent when not a terminal, unless forced)."""

    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr, force: bool = False) -> None:
        self.total, self.label, self.stream = max(total, 1), label, stream
        self.enabled = force or stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate else 0
        width = 30
        filled = int(width * min(done, self.total) / self.total)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{rate:,.0f}/s ETA {eta:,.0f}s "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def html_report(report: ReplayReport) -> str:
    """A self-contained HTML page: summary, per-batch table, discrepancies, and a chart of
    attestations anchored over time (inline SVG, no scripts, no network)."""
    data = report.to_json()
    summary = data["summary"]
    verdict = "No discrepancies" if report.clean else f"{len(report.discrepancies)} discrepancies"
    points, total = [], 0
    for batch in sorted(report.batches, key=lambda b: b["time"]):
        total += batch["count"]
        points.append((batch["time"], total))
    chart = _svg_chart(points)
    rows = "".join(
        f"<tr class='{'bad' if b['status'] != 'ok' else ''}'><td>{b['index']}</td><td><code>{b['root']}</code></td>"
        f"<td>{b['count']}</td><td>{b['present']}</td><td>{b['block']}</td><td>{html.escape(b['status'])}</td></tr>"
        for b in report.batches
    )
    issues = (
        "".join(
            f"<li><b>{html.escape(d.kind)}</b>{f' (batch {d.batch})' if d.batch is not None else ''}: "
            f"{html.escape(d.message)}<br><small>{html.escape(', '.join(d.uids[:5]))}</small>"
            f"{'<pre>' + html.escape(json.dumps(d.evidence, indent=1)[:2000]) + '</pre>' if d.evidence else ''}</li>"
            for d in report.discrepancies
        )
        or "<li>none</li>"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Ledger replay report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;
padding:2px 6px}} .bad{{background:#fdd}} code{{font-size:80%}}</style></head><body>
<h1>Ledger replay report: {html.escape(verdict)}</h1>
<p>Replayed the {html.escape(describe_deployment(report.deployment))}, blocks {report.from_block} to {report.to_block}.
{summary["attestations"]} attestations in {summary["batches"]} batches replayed in {summary["seconds"]} s.</p>
<h2>Attestations anchored over time</h2>{chart}
<h2>Discrepancies</h2><ul>{issues}</ul>
<h2>Batches</h2><table><tr><th>index</th><th>root</th><th>anchored</th><th>present</th><th>block</th>
<th>status</th></tr>{rows}</table></body></html>"""


def _svg_chart(points: list[tuple[int, int]]) -> str:
    if not points:
        return "<p>No batches anchored.</p>"
    width, height = 600, 200
    t0, t1 = points[0][0], max(points[-1][0], points[0][0] + 1)
    top = max(p[1] for p in points)
    coords = " ".join(
        f"{40 + (t - t0) / (t1 - t0) * (width - 50):.1f},{height - 20 - n / top * (height - 40):.1f}" for t, n in points
    )
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='cumulative attestations anchored'>"
        f"<polyline fill='none' stroke='#2a6' stroke-width='2' points='{coords}'/>"
        f"<text x='2' y='15' font-size='11'>{top}</text><text x='2' y='{height - 22}' font-size='11'>0</text>"
        "</svg>"
    )
