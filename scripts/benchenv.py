"""Shared set-up of the benchmarks: a fresh anvil chain with the contracts deployed and
the given dev accounts accredited. One place, so every benchmark measures the same thing."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
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
from ledger.roles import Role


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


class TreeRss:
    """Samples the summed RSS (KiB) of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:

        self.pid, self.interval, self.peak = pid, interval, 0
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

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(self._rss(p) for p in self._tree(self.pid)))
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
