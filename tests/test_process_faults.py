"""Process and database faults under HTTP load: an API process SIGKILLed mid-request,
PostgreSQL stopped mid-ingest. Real `provenance serve` subprocesses, real clients, and
for the database stop a throwaway PostgreSQL cluster of the test's own (initdb into a
temporary folder, its own port): the machine's shared server is never touched.

The promises checked after every fault:
- every attestation the API acknowledged (201/207 "created" or "exists") is stored;
- nothing half-written is visible: a batch request is stored whole or not at all, and
  every stored attestation has all of its references and re-derives its own UID;
- the API never answers 500: during a database outage it says 503 and stores nothing;
- resubmitting everything afterwards stores each attestation exactly once.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ledger.chain.anvil import free_port
from ledger.core import Ledger
from ledger.eip712 import attestation_uid
from ledger.hashing import hex32
from ledger.kinds import Kind
from ledger.store.models import AttestationRefRow, AttestationRow
from ledger.store.rows import attestation_from_row
from ledger.submission import build_submission

from .conftest import REPO, ReliabilityRecorder
from .scenario import actor, signing_time

BATCH = 10  # items per request: 5 productions, each followed by a transfer referencing it


class ApiProcess:
    """`provenance serve` as a real subprocess on the test's database and chain."""

    def __init__(self, ledger: Ledger, home: Path) -> None:
        manifest = ledger.deployment.manifest.save(home / "deployment.json")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PROVENANCE_HOME": str(home),
            "PROVENANCE_MANIFEST": str(manifest),
            "PROVENANCE_DATABASE_URL": ledger.settings.resolved_database_url,
            "PROVENANCE_RPC_URL": ledger.settings.resolved_rpc_url,
            "PROVENANCE_RATE_LIMIT": "100000",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else b""
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "API did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@dataclass
class Traffic:
    """Pre-signed batches, what was sent, and what the API acknowledged."""

    batches: list[list[dict[str, Any]]]
    acknowledged: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    interrupted: int = 0  # requests cut off after they reached the server (not refused connections)
    rejected: list[str] = field(default_factory=list)  # reasons; every item sent is valid
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def refs_of(self) -> dict[str, int]:
        return {s["uid"]: len(s["typedData"]["message"]["refs"]) for b in self.batches for s in b}

    def note(self, status: int, body: dict[str, Any] | None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status in (201, 207) and body:
                self.acknowledged.update(r["uid"] for r in body["results"] if r["status"] in ("created", "exists"))
                self.rejected += [f"{r['reason']}: {r['detail']}" for r in body["results"] if r["status"] == "rejected"]


def signed_batches(ledger: Ledger, count: int, tag: str) -> list[list[dict[str, Any]]]:
    """`count` batches; each production is followed by a transfer that references it."""
    maker, carrier = actor("maker"), actor("carrier")
    now = signing_time(ledger)
    batches = []
    for b in range(count):
        items: list[dict[str, Any]] = []
        for i in range(BATCH // 2):
            lot = f"{tag}-{b}-{i}"
            made = build_submission(
                maker,
                Kind.PRODUCTION,
                ledger.domain,
                {"lot": lot, "quantity": 100, "unit": "pcs", "goodsClass": "847130"},
                subject=f"lot:{lot}",
                issued_at=now,
            )
            moved = build_submission(
                maker,
                Kind.TRANSFER,
                ledger.domain,
                {"lot": lot, "quantity": 100, "unit": "pcs", "to": carrier.address},
                subject=f"lot:{lot}",
                refs=[made["uid"]],
                issued_at=now + 1,
            )
            items += [made, moved]
        batches.append(items)
    return batches


def send(url: str, traffic: Traffic, batches: list[list[dict[str, Any]]], stop: threading.Event) -> None:
    """One client: posts its batches in order until told to stop. Like a well-behaved
    client it retries a 503 after its Retry-After; a dead server is a transport error."""
    with httpx.Client(base_url=url, timeout=30) as http:
        for batch in batches:
            while not stop.is_set():
                try:
                    response = http.post("/v1/attestations/batch", json=batch)
                except httpx.HTTPError as exc:
                    with traffic.lock:
                        traffic.transport_errors += 1
                        traffic.interrupted += not isinstance(exc, httpx.ConnectError)
                    break
                json_body = response.headers.get("content-type", "").startswith("application/json")
                traffic.note(response.status_code, response.json() if json_body else None)
                if response.status_code != 503:
                    break
                assert response.headers["Retry-After"] == "2"
                time.sleep(0.25)  # shorter than Retry-After: the test wants many requests in the outage


def load(url: str, traffic: Traffic, clients: int = 4) -> tuple[list[threading.Thread], threading.Event]:
    stop = threading.Event()
    shares = [traffic.batches[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=send, args=(url, traffic, share, stop), daemon=True) for share in shares]
    for t in threads:
        t.start()
    return threads, stop


def assert_nothing_lost_or_half_written(ledger: Ledger, traffic: Traffic) -> int:
    """The promises, read straight from the store. Returns the number of stored attestations."""
    refs_of = traffic.refs_of
    with ledger.sessions() as session:
        rows = session.scalars(select(AttestationRow)).all()
        ref_rows: dict[str, list[str]] = {}
        for ref in session.scalars(select(AttestationRefRow).order_by(AttestationRefRow.position)):
            ref_rows.setdefault(ref.uid, []).append(ref.ref)
    stored = {row.uid for row in rows}
    missing = traffic.acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged attestations were lost"
    assert stored <= set(refs_of), "the store holds an attestation nobody sent"
    for row in rows:
        refs = ref_rows.get(row.uid, [])
        assert len(refs) == refs_of[row.uid], f"{row.uid} stored without all of its references"
        assert hex32(attestation_uid(attestation_from_row(row, refs), ledger.domain)) == row.uid
    for batch in traffic.batches:
        present = [s["uid"] in stored for s in batch]
        assert all(present) or not any(present), "a batch request was stored in part"
    return len(stored)


def resubmit_everything(url: str, traffic: Traffic) -> tuple[int, int]:
    """Every batch again: each item must come back created or exists, never rejected."""
    created = existing = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        for batch in traffic.batches:
            body = http.post("/v1/attestations/batch", json=batch).json()
            assert body["rejected"] == 0, body
            created += body["created"]
            existing += body["existing"]
    return created, existing


def count(ledger: Ledger) -> int:
    with ledger.sessions() as session:
        return int(session.scalar(select(func.count(AttestationRow.id))) or 0)


@pytest.fixture
def api_process(ledger_env: Ledger, tmp_path: Path) -> Iterator[ApiProcess]:
    server = ApiProcess(ledger_env, tmp_path)
    yield server
    server.stop()


@pytest.mark.long
def test_sigkill_of_the_api_process_mid_request_loses_no_acknowledged_attestation(
    ledger_env: Ledger, api_process: ApiProcess, reliability: ReliabilityRecorder
) -> None:
    ledger, rng = ledger_env, random.Random(7)
    kills = transport_errors = interrupted = 0
    all_traffic = Traffic(batches=[])
    for round_ in range(4):
        traffic = Traffic(batches=signed_batches(ledger, 80, f"K{round_}"))
        api_process.start()
        threads, stop = load(api_process.url, traffic)
        # Kill once the server is answering (by what the clients saw, not by a fixed head
        # start), at a random point after that: the clients are posting as fast as they can.
        wait_for(lambda: bool(traffic.statuses), "the server answered a first request")  # noqa: B023
        time.sleep(rng.uniform(0.0, 0.3))
        api_process.kill()
        kills += 1
        stop.set()
        for t in threads:
            t.join(timeout=60)
        transport_errors += traffic.transport_errors
        interrupted += traffic.interrupted
        assert traffic.interrupted > 0, f"the kill cut off no request in progress: {traffic.statuses}"
        assert 500 not in traffic.statuses, traffic.statuses
        assert not traffic.rejected, traffic.rejected[:3]
        all_traffic.batches += traffic.batches
        all_traffic.acknowledged |= traffic.acknowledged
        assert_nothing_lost_or_half_written(ledger, all_traffic)
    stored_before = count(ledger)
    api_process.start()
    created, existing = resubmit_everything(api_process.url, all_traffic)
    total = sum(len(b) for b in all_traffic.batches)
    assert existing == stored_before and created == total - stored_before
    assert assert_nothing_lost_or_half_written(ledger, all_traffic) == total == count(ledger)
    reliability.record(
        "fault",
        "API process SIGKILLed mid-request under 4 concurrent clients",
        kills,
        f"every kill cut off requests in progress ({interrupted} in all, {transport_errors} transport errors); "
        f"{len(all_traffic.acknowledged)} of {total} acknowledged before the kills, all stored; no batch stored "
        f"in part; resubmitting all {total} stored each once ({existing} already there)",
        kind="process kill",
    )


class ThrowawayPostgres:
    """A PostgreSQL cluster of the test's own: initdb into a temporary folder, its own
    port and socket folder, run as the `postgres` user when the tests run as root
    (PostgreSQL refuses to run as root). Only the binaries are needed."""

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not binaries:
            pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql (scripts/install.sh installs them)")
        self.bin = binaries[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="pl-throwaway-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stdout[-1000:]} {done.stderr[-1000:]}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    cluster.start()
    yield cluster
    cluster.destroy()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("database_url", ["throwaway-postgresql"], indirect=True)
@pytest.mark.long
def test_postgresql_stopped_mid_ingest_loses_nothing_and_the_api_answers_503(
    throwaway_postgres: ThrowawayPostgres, ledger_env: Ledger, api_process: ApiProcess, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    traffic = Traffic(batches=signed_batches(ledger, 160, "PG"))
    total = sum(len(b) for b in traffic.batches)
    api_process.start()
    assert api_process.proc is not None
    pid = api_process.proc.pid
    threads, _ = load(api_process.url, traffic)
    # Stop the database once ingest is under way (by what the clients saw, not by a
    # fixed head start a faster machine could finish inside).
    wait_for(lambda: len(traffic.acknowledged) >= 40, "the clients had 40 items acknowledged")
    throwaway_postgres.stop("immediate")  # like a crash: no checkpoint, connections cut
    at_stop = len(traffic.acknowledged)
    assert at_stop < total, "the load finished before the database stopped"
    wait_for(lambda: traffic.statuses.get(503, 0) >= 20, "clients met 20 answers of 503 in the outage")
    during = dict(traffic.statuses)
    assert api_process.proc.poll() is None, "the API process died in the outage"
    throwaway_postgres.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert 500 not in traffic.statuses, traffic.statuses
    assert not traffic.rejected, traffic.rejected[:3]
    assert traffic.transport_errors == 0, "the API process kept answering throughout"
    assert len(traffic.acknowledged) == total, "clients retrying after 503 got every item acknowledged"
    assert_nothing_lost_or_half_written(ledger, traffic)
    # The same server process recovers by itself once the database is back.
    assert api_process.proc.poll() is None and api_process.proc.pid == pid
    assert httpx.get(f"{api_process.url}/readyz", timeout=10).json()["database"] == "ok"
    created, existing = resubmit_everything(api_process.url, traffic)
    assert (created, existing) == (0, total)
    assert assert_nothing_lost_or_half_written(ledger, traffic) == total == count(ledger)
    reliability.record(
        "fault",
        "PostgreSQL (a throwaway cluster) stopped in immediate mode mid-ingest under 4 concurrent clients, "
        "then restarted",
        1,
        f"stopped after {at_stop} of {total} items were acknowledged; {traffic.statuses.get(503, 0)} requests "
        f"answered 503 during the outage, none 500 (statuses {dict(sorted(traffic.statuses.items()))}, "
        f"when the outage was checked {dict(sorted(during.items()))}); the API process stayed up (same pid) and "
        f"recovered by itself; clients retrying after 503 had all {total} acknowledged; all stored, no batch "
        "stored in part, a full resubmission stored nothing new",
        kind="database stop",
    )
