"""Shared set-up of the benchmarks: a fresh anvil chain with the contracts deployed and
the given dev accounts accredited. One place, so every benchmark measures the same thing."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web3 import Web3

from ledger.chain.accounts import dev_account
from ledger.chain.anvil import AnvilNode, start_anvil
from ledger.chain.client import Deployment, call_and_send, connect
from ledger.chain.deploy import FOREVER, deploy
from ledger.chain.manifest import Manifest
from ledger.core import Ledger
from ledger.eip712 import Domain
from ledger.kinds import Kind
from ledger.roles import Role
from ledger.submission import build_submission


@contextmanager
def bench_chain(
    accredit: dict[int, Role], state_file: Path | None = None
) -> Iterator[tuple[AnvilNode, Web3, Manifest]]:
    """Anvil + deployment; dev account index -> role for each participant to admit. With
    `state_file`, the chain's state is written there when the node stops."""
    node = start_anvil(state_file=state_file, state_interval=None)
    try:
        w3 = connect(node.rpc_url)
        manifest = deploy(w3, dev_account(0), dev_account(1).address)
        registry = Deployment(w3, manifest).registry
        for index, role in accredit.items():
            call_and_send(
                w3,
                dev_account(0),
                registry.functions.admit(
                    dev_account(index).address, Web3.keccak(text=f"bench:{index}"), int(role), 0, FOREVER
                ),
            )
        time.sleep(1.1)  # signatures must come after the admissions' block time
        yield node, w3, manifest
    finally:
        node.stop()


@contextmanager
def kept_chain(
    store: Path, accredit: dict[int, Role], fresh: bool = False
) -> Iterator[tuple[AnvilNode, Web3, Manifest, dict[str, Any] | None]]:
    """The chain a benchmark kept in `store` (anvil's state on disk, and `meta.json` that
    the benchmark wrote with `save_meta` once its store was built), with that meta; or,
    when there is none or `fresh`, a new chain (the folder emptied first) and None. The
    chain's state is written back to the folder when the node stops."""
    meta_path = store / "meta.json"
    if not fresh and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        node = start_anvil(state_file=store / "anvil-state.json", state_interval=None)
        try:
            yield node, connect(node.rpc_url), Manifest(**json.loads(meta["manifest"])), meta
        finally:
            node.stop()
        return
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    with bench_chain(accredit, state_file=store / "anvil-state.json") as (node, w3, manifest):
        yield node, w3, manifest, None


def code_commit(repo: Path) -> str:
    """The commit whose code a benchmark measured, marked when the working tree's code
    differs from it (the README, which benchmarks write, does not count)."""
    import subprocess

    git = ["git", "-C", str(repo)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)README.md"],
        capture_output=True,
        text=True,
    )
    return commit + (" + uncommitted changes" if dirty.stdout.strip() else "")


def save_meta(store: Path, manifest: Manifest, **facts: object) -> None:
    """What a later run needs to reuse the store kept in `store` (see `kept_chain`)."""
    (store / "meta.json").write_text(json.dumps({"manifest": manifest.to_json(), **facts}))


def replace_readme_block(readme: Path, name: str, block: str) -> bool:
    """Put `block` between README's `<!-- NAME:start -->` and `<!-- NAME:end -->` markers
    (a benchmark writes its own figures there, never a hand); False when they are missing."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        print(f"{readme} has no {name} markers; not updated", file=sys.stderr)
        return False
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{start}\n{block}{end}{after}")
    return True


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    """Median of several runs with min and max: how every benchmark figure is reported."""
    import statistics

    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
    }


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest-rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def write_results(path: Path, results: dict[str, object]) -> None:
    """Write a benchmark's results as JSON and print them."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def productions(domain: Any, count: int, prefix: str, issued_at: int | None = None) -> list[dict[str, Any]]:
    """`count` signed Production submissions by the maker (dev account 3), one lot each."""
    from ledger.kinds import Kind
    from ledger.submission import build_submission

    maker = dev_account(3)
    return [
        build_submission(
            maker,
            Kind.PRODUCTION,
            domain,
            {"lot": f"{prefix}{i}", "quantity": 1 + i % 50, "unit": "pcs", "goodsClass": "847130"},
            subject=f"lot:{prefix}{i}",
            issued_at=issued_at,
        )
        for i in range(count)
    ]


def productions_store(ledger: Any, n: int, w3: Web3, chunk: int = 2000) -> float:
    """Sign and ingest `n` productions into `ledger` (progress on stderr), then anchor them
    all; returns the seconds signing and ingest took (anchoring not counted)."""
    t0 = max(int(time.time()), ledger.deployment.now())
    started = time.perf_counter()
    for start in range(0, n, chunk):
        ledger.ingest_many(productions(ledger.domain, min(n, start + chunk) - start, f"L{start}-", t0))
        print(f"\rbuilt {min(n, start + chunk)}/{n}", end="", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(file=sys.stderr)
    ledger.anchoring_worker(confirmations=1, max_age=0.0).drain(
        timeout=600,
        mine=lambda: w3.provider.make_request("evm_mine", []),  # type: ignore[arg-type]
    )
    return seconds


RIGHTS = [2, 12]
MAKERS = [3, 13, 14, 15]
EXPORTERS = [4, 16, 17]
CARRIERS = [5, 18, 19, 20, 21, 22, 23, 24, 25, 26]
CUSTOMS = 6
CAST: dict[int, Role] = (
    {r: Role.RIGHTS_HOLDER for r in RIGHTS}
    | {m: Role.MANUFACTURER for m in MAKERS}
    | {e: Role.EXPORTER for e in EXPORTERS}
    | {c: Role.CARRIER for c in CARRIERS}
    | {CUSTOMS: Role.CUSTOMS}
)
HOPS = 10


class Builder:
    """Signs and ingests a realistic ledger, in batches of 500 submissions. With no ledger
    (a signing process of `realistic_store`) it only signs, for `domain` at `issued_at`,
    and keeps the submissions in `pending`."""

    def __init__(self, ledger: Ledger | None, domain: Domain | None = None, issued_at: int | None = None) -> None:
        self.ledger = ledger
        if ledger is not None:
            domain, issued_at = ledger.domain, max(int(time.time()), ledger.deployment.now())
        assert domain is not None and issued_at is not None, "a signing-only builder needs a domain and a time"
        self.domain, self.t = domain, issued_at
        self.pending: list[dict[str, Any]] = []
        self.stored = 0
        self.shipments: list[str] = []
        self.licences: dict[int, list[str]] = {}

    def sign(self, who: int, kind: Kind, fields: dict[str, Any], subject: str, refs: list[str] = ()) -> str:  # type: ignore[assignment]
        submission = build_submission(
            dev_account(who), kind, self.domain, fields, subject=subject, refs=list(refs), issued_at=self.t
        )
        self.pending.append(submission)
        if len(self.pending) >= 500 and self.ledger is not None:
            self.flush()
        return str(submission["uid"])

    def flush(self) -> None:
        if self.pending and self.ledger is not None:
            results = self.ledger.ingest_many(self.pending)
            refused = [r for r in results if type(r).__name__ == "Rejected"]
            if refused:
                raise RuntimeError(f"the benchmark's own submissions were refused: {refused[:3]}")
            self.stored += len(results)
            self.pending = []

    def licences_of(self, maker: int) -> list[str]:
        if maker not in self.licences:
            rights = RIGHTS[maker % len(RIGHTS)]
            asset = self.sign(rights, Kind.IP_ASSET, {"title": f"design {maker}"}, f"asset:{maker}")
            terms = {
                "licensee": dev_account(maker).address,
                "goodsClasses": ["8413"],
                "territories": ["FR", "DE", "NL"],
                "validFrom": 0,
                "validUntil": 2**40,
                "quantityCap": 10**12,
            }
            self.licences[maker] = [
                self.sign(rights, Kind.LICENCE, terms, f"licence:{maker}:{i}", [asset]) for i in range(2)
            ]
        return self.licences[maker]

    def lot(self, n: int) -> None:
        """One 10-hop, 2-licence shipment (about 13 records), with splits, findings and
        unrelated watch-list entries mixed in."""
        maker = MAKERS[n % len(MAKERS)]
        exporter = EXPORTERS[n % len(EXPORTERS)]
        lot = f"L{n}"
        current = self.sign(
            maker,
            Kind.PRODUCTION,
            {"lot": lot, "quantity": 1000, "unit": "pcs", "goodsClass": "841370"},
            f"lot:{lot}",
            self.licences_of(maker),
        )
        holder, quantity = maker, 1000
        for hop in range(HOPS):
            to = exporter if hop == HOPS - 1 else CARRIERS[(n + hop) % len(CARRIERS)]
            if to == holder:
                to = CARRIERS[(n + hop + 1) % len(CARRIERS)]
            if n % 10 == 0 and hop == 3:  # a split: part goes elsewhere
                self.sign(
                    holder,
                    Kind.TRANSFER,
                    {"lot": lot, "quantity": 100, "unit": "pcs", "to": dev_account(CARRIERS[0]).address},
                    f"lot:{lot}",
                    [current],
                )
                quantity -= 100
            current = self.sign(
                holder,
                Kind.TRANSFER,
                {"lot": lot, "quantity": quantity, "unit": "pcs", "to": dev_account(to).address},
                f"lot:{lot}",
                [current],
            )
            holder = to
        shipment = self.sign(
            exporter,
            Kind.SHIPMENT,
            {"quantity": quantity, "unit": "pcs", "goodsClass": "841370", "destination": "FR"},
            f"shipment:{lot}",
            [current],
        )
        self.shipments.append(shipment)
        if n % 7 == 0:
            self.sign(CUSTOMS, Kind.CUSTOMS_FINDING, {"finding": "INSPECTED_OK"}, f"finding:{lot}", [shipment])
        if n % 5 == 0:
            self.sign(RIGHTS[n % 2], Kind.WATCHLIST, {"goodsClasses": [f"{9000 + n % 900}"]}, f"watch:{n}")


LOTS_PER_TASK = 40  # about 550 records: one task of a signing process


def _sign_lots(
    domain: Domain, issued_at: int, licences: dict[int, list[str]], first: int, stop: int
) -> list[dict[str, Any]]:
    """The submissions of lots `first`..`stop` - 1, signed as `Builder.lot` signs them."""
    builder = Builder(None, domain, issued_at)
    builder.licences = licences
    for n in range(first, stop):
        builder.lot(n)
    return builder.pending


def signed_lots(builder: Builder, first: int, n: int) -> list[dict[str, Any]]:
    """`n` realistic submissions — whole lots from lot `first` on, the last cut short —
    signed as `Builder.lot` signs them for `builder`'s domain, time and licences, and not
    ingested: what the ingest benchmarks time. The licences must already be in the
    ledger (`Builder.licences_of`, then `Builder.flush`)."""
    signed: list[dict[str, Any]] = []
    lot = first
    while len(signed) < n:
        signed += _sign_lots(builder.domain, builder.t, builder.licences, lot, lot + LOTS_PER_TASK)
        lot += LOTS_PER_TASK
    return signed[:n]


def with_licences(ledger: Ledger) -> Builder:
    """A builder for `ledger` whose makers' licences (and their IP assets) are ingested."""
    builder = Builder(ledger)
    for maker in MAKERS:
        builder.licences_of(maker)
    builder.flush()
    return builder


def realistic_store(ledger: Ledger, n: int, w3: Web3, jobs: int | None = None) -> float:
    """Exactly `n` realistic records (`Builder.lot`: custody chains with references, many
    signers, splits, findings, watch-list entries) ingested into `ledger` through the
    library's validating ingest, in the order `Builder` signs them, then all anchored in
    batches of 4,096; returns the seconds signing and ingest took (anchoring not counted).
    The signing, the costliest part, runs ahead in `jobs` processes (default one per
    core), lots in order; this process ingests. The last lot may be cut short to make `n`:
    records only refer to earlier ones, so every reference is still held."""
    builder = with_licences(ledger)  # the licences every production refers to, ingested first
    started = time.perf_counter()
    workers = jobs or os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool:
        window: deque[Future[list[dict[str, Any]]]] = deque()
        tasks = (
            pool.submit(_sign_lots, builder.domain, builder.t, builder.licences, first, first + LOTS_PER_TASK)
            for first in itertools.count(0, LOTS_PER_TASK)
        )
        window.extend(itertools.islice(tasks, 2 * workers))  # bounded: signing outruns ingest
        while builder.stored < n:
            signed = window.popleft().result()
            window.append(next(tasks))
            for start in range(0, len(signed), 500):
                builder.pending = signed[start : start + min(500, n - builder.stored)]
                builder.flush()
                if builder.stored >= n:
                    break
            print(f"\rsigned and ingested {builder.stored:,}/{n:,}", end="", file=sys.stderr)
        for waiting in window:
            waiting.cancel()
    seconds = time.perf_counter() - started
    print(file=sys.stderr)
    ledger.anchoring_worker(confirmations=1, max_age=0.0, max_batch=4096).drain(
        timeout=3600,
        mine=lambda: w3.provider.make_request("evm_mine", []),  # type: ignore[arg-type]
    )
    return seconds


class TreeRss:
    """Samples the summed RSS (KiB) of a process and all its descendants until stopped,
    and the CPU seconds each of them had used when last seen (`cpu`: pid -> seconds; a
    process's last interval before it ends is not seen)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self, pid: int) -> list[int]:
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                with contextlib.suppress(OSError):  # the process ended meanwhile
                    todo += [int(c) for c in task.read_text().split()]
        return found

    def _rss(self, pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _cpu(self, pid: int) -> None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        self.cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = self._tree(self.pid)
            self.peak = max(self.peak, sum(self._rss(p) for p in tree))
            for pid in tree:
                self._cpu(pid)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """Wait until GET `url` answers 200 (a server this benchmark started); exit if it never does."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")
