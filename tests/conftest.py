"""Shared fixtures: a real anvil chain, fresh deployments, real databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from ledger.chain.accounts import dev_account
from ledger.chain.anvil import AnvilNode, start_anvil
from ledger.chain.client import Deployment, connect
from ledger.chain.deploy import deploy

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def anvil() -> Iterator[AnvilNode]:
    """A fresh anvil node per test (mines a block per transaction). Per test, because
    snapshots, reverts and block-clock drift in one test must not leak into another."""
    node = start_anvil(state_file=None)
    yield node
    node.stop()


@pytest.fixture
def w3(anvil: AnvilNode) -> Web3:
    return connect(anvil.rpc_url)


@pytest.fixture
def deployment(w3: Web3) -> Deployment:
    """A fresh registry + ledger, registrar dev account 0, anchorer dev account 1."""
    return Deployment(w3, deploy(w3, dev_account(0), dev_account(1).address))


# --------------------------------------------------------------------------- storage

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database created and dropped
    here (on the shared server), or, with the parameter "throwaway-postgresql", the
    `throwaway_postgres` fixture's own cluster (for tests that stop the server)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if request.param == "throwaway-postgresql":
        yield request.getfixturevalue("throwaway_postgres").url
        return
    import uuid

    import psycopg

    name = f"pl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------ the ledger

ACTORS = {
    "registrar": 0,
    "anchorer": 1,
    "rights_holder": 2,
    "maker": 3,
    "exporter": 4,
    "carrier": 5,
    "customs": 6,
    "outsider": 7,
    "importer": 8,
}


@pytest.fixture
def ledger_env(deployment: Deployment, database_url: str, tmp_path: Path) -> Iterator[object]:
    """A `Ledger` on a fresh deployment and database, with accredited participants."""
    from ledger.chain.client import call_and_send
    from ledger.chain.deploy import FOREVER
    from ledger.config import Settings
    from ledger.core import Ledger
    from ledger.roles import Role

    roles = {
        "rights_holder": Role.RIGHTS_HOLDER,
        "maker": Role.MANUFACTURER,
        "exporter": Role.EXPORTER,
        "carrier": Role.CARRIER,
        "customs": Role.CUSTOMS,
        "importer": Role.IMPORTER,
    }
    registry = deployment.registry
    for name, role in roles.items():
        account = dev_account(ACTORS[name])
        call_and_send(
            deployment.w3,
            dev_account(0),
            registry.functions.admit(account.address, Web3.keccak(text=name), int(role), 0, FOREVER),
        )
    settings = Settings(
        home=tmp_path,
        database_url=database_url,
        rpc_url=deployment.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        confirmations=1,
        batch_max_size=64,
        batch_max_age_seconds=0.0,
    )
    ledger = Ledger.open(settings, manifest=deployment.manifest)
    yield ledger
    ledger.close()


# ---------------------------------------------------------------- reliability report
#
# Fault and hostile-input tests say what they injected through the `reliability`
# fixture. With --reliability-json=PATH, the session writes every record together with
# its test's outcome (a failing test writes its records as failed, or a row of its own
# when it failed before recording), plus the outcome of every test of the run;
# scripts/reliability_report.py renders that as Markdown, so the report's figures are the
# tests' own and describe the code that was just tested.

# What a fault is. Real: the thing itself happened to a real process, database or chain.
# Stand-ins: an exception raised from a test hook, or sequential calls in one process
# standing in for concurrent ones; the report lists them apart.
REAL_FAULTS = {
    "process kill": "a real process killed with SIGKILL",
    "database stop": "a real PostgreSQL server stopped (immediate shutdown) and restarted",
    "chain outage": "a real chain node stopped, or unreachable",
    "chain reorganisation": "real blocks dropped from a real chain (anvil evm_snapshot / evm_revert)",
    "concurrent requests": "real concurrent clients against a real server",
}
STAND_IN_FAULTS = {
    "test hook": "an exception raised from a test hook inside the worker (no process dies)",
    "sequential": "sequential calls in one process standing in for concurrent workers",
    "proxy": "a proxy in front of a real node answering chosen calls with errors",
    "unlabelled": "not labelled by its test, so not claimed as real",
}


class ReliabilityRecorder:
    """What one test injected: group, class of fault or input, how many times, outcome."""

    def __init__(self, node: pytest.Item) -> None:
        self.node = node

    def record(self, group: str, what: str, tried: int, outcome: str, *, kind: str | None = None) -> None:
        """`group` is one of fault, input, access, fuzz, property; `outcome` says what the
        test observed (and asserted) about every one of the `tried` injections. A fault
        says what `kind` it is (REAL_FAULTS or STAND_IN_FAULTS); fuzz and property counts
        are the tools' own statistics (`hypothesis_cases`, schemathesis's summary)."""
        assert group in {"fault", "input", "access", "fuzz", "property"}, group
        assert tried > 0, "a record must count what was actually tried"
        if group == "fault":
            kind = kind or "unlabelled"
            assert kind in REAL_FAULTS or kind in STAND_IN_FAULTS, f"fault of unknown kind {kind!r}"
        else:
            assert kind is None, "only faults have a kind"
        row = {"group": group, "what": what, "tried": tried, "outcome": outcome}
        if kind is not None:
            row["kind"] = kind
        self.node.user_properties.append(("reliability", row))


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> ReliabilityRecorder:
    return ReliabilityRecorder(request.node)  # type: ignore[arg-type]


def hypothesis_cases(test: Callable[[], None]) -> int:
    """Run a @given test and return how many valid test cases hypothesis itself counted
    in its generate phase (its own statistics: no discarded or overrun examples, no
    shrinking replays)."""
    from hypothesis.statistics import collector

    stats: list[dict[str, Any]] = []
    with collector.with_value(stats.append):
        test()
    assert stats, "hypothesis reported no statistics"
    cases = stats[-1].get("generate-phase", {}).get("test-cases", [])
    valid = sum(1 for case in cases if case.get("status") == "valid")
    assert valid > 0, stats[-1]
    return valid


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-json", default=None, help="write the reliability records here")


_OUTCOMES: dict[str, dict[str, Any]] = {}  # nodeid -> what happened to it, phase by phase
_SESSION: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: records faults or hostile inputs for the reliability report")


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _SESSION["started"] = time.time()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "reliability" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reliability)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _OUTCOMES.setdefault(
        report.nodeid, {"outcome": "passed", "seconds": 0.0, "records": [], "message": "", "reliability": False}
    )
    entry["seconds"] += report.duration
    entry["reliability"] = entry["reliability"] or "reliability" in report.keywords
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        entry["message"] = str(report.wasxfail)
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        crash = getattr(report.longrepr, "reprcrash", None)
        entry["message"] = crash.message if crash is not None else str(report.longrepr)[-500:]
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    if report.when == "teardown":  # the last phase: every record the test made is known
        entry["records"] = [dict(value) for name, value in report.user_properties if name == "reliability"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--reliability-json")
    if not path:
        return
    import json
    import sys
    import time

    rows: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    for nodeid, entry in _OUTCOMES.items():
        tests.append({"test": nodeid, "outcome": entry["outcome"], "seconds": round(entry["seconds"], 2)})
        for record in entry["records"]:
            rows.append({**record, "test": nodeid, "result": entry["outcome"], "seconds": round(entry["seconds"], 2)})
        if entry["reliability"] and not entry["records"] and entry["outcome"] != "skipped":
            # Failed (or xfailed) before it could record: the report still shows the test.
            rows.append(
                {
                    "group": "unrecorded",
                    "what": nodeid,
                    "tried": 0,
                    "outcome": entry["message"] or entry["outcome"],
                    "test": nodeid,
                    "result": entry["outcome"],
                    "seconds": round(entry["seconds"], 2),
                }
            )
    document = {
        "started": _SESSION.get("started"),
        "finished": time.time(),
        "exitstatus": int(exitstatus),
        "args": [str(a) for a in session.config.invocation_params.args],
        "python": sys.version.split()[0],
        "tests": tests,
        "records": rows,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=1))
