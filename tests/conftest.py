"""Shared fixtures: a real anvil chain, fresh deployments, real databases."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from web3 import Web3

from ledger.chain.accounts import dev_account
from ledger.chain.anvil import AnvilNode, start_anvil
from ledger.chain.client import Deployment, connect
from ledger.chain.deploy import deploy
from ledger.store.db import scratch_postgres_database

if TYPE_CHECKING:
    from ledger.core import Ledger

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

# Which databases the database-parametrised tests run on. Both by default; with
# PROVENANCE_TEST_DATABASES=postgresql the suite runs with PostgreSQL as its only database:
# the "sqlite" cases are deselected, tests that use the product's default store get a
# PostgreSQL database too (`default_store_env`), and a test that leaves a SQLite
# `ledger.db` behind fails (`_no_sqlite_when_excluded`). Tests about SQLite itself carry
# `@pytest.mark.sqlite_itself("why")` and are deselected with the sqlite cases.
DATABASES = ("sqlite", "postgresql")


def selected_databases() -> tuple[str, ...]:
    raw = os.environ.get("PROVENANCE_TEST_DATABASES", ",".join(DATABASES))
    chosen = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in DATABASES]
    if not chosen or unknown:
        raise pytest.UsageError(
            f"PROVENANCE_TEST_DATABASES={raw!r}: expected a comma-separated list of {', '.join(DATABASES)}"
        )
    return chosen


def fresh_postgres_database() -> AbstractContextManager[str]:
    """A new, empty database on the shared PostgreSQL server, dropped afterwards."""
    return scratch_postgres_database("pl_test_", POSTGRES_ADMIN_URL)


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
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def default_store_env() -> Iterator[dict[str, str]]:
    """Environment for a subprocess that uses the product's default store (tests of
    `provenance up`, the walkthrough): nothing when SQLite is among the test databases
    (the default store is then `$PROVENANCE_HOME/ledger.db`, as a new user gets it), and
    a fresh PostgreSQL database in PROVENANCE_DATABASE_URL when it is not."""
    if "sqlite" in selected_databases():
        yield {}
        return
    with fresh_postgres_database() as url:
        yield {"PROVENANCE_DATABASE_URL": url}


def _database_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "database_url" not in callspec.params:
        return None
    param = str(callspec.params["database_url"])
    return "postgresql" if param.endswith("postgresql") else param


def _pinned_to_sqlite(item: pytest.Item) -> bool:
    """Whether the test's own parametrisation of `database_url` names SQLite alone (read
    from its markers, so selecting one case by its id or by -k does not change it)."""
    for marker in item.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames")
        if names != "database_url":
            continue
        values = marker.args[1] if len(marker.args) > 1 else marker.kwargs.get("argvalues", [])
        params = {str(v.values[0]) if hasattr(v, "values") else str(v) for v in values}
        return params == {"sqlite"}
    return False


def _select_databases(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cases of databases not selected; refuse a test pinned to SQLite alone
    that does not say it is about SQLite (it would silently never run on PostgreSQL)."""
    chosen = selected_databases()
    for item in items:
        marker = item.get_closest_marker("sqlite_itself")
        if marker is not None and not marker.args:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.sqlite_itself needs the reason as its argument")
        if marker is None and _pinned_to_sqlite(item):
            raise pytest.UsageError(
                f"{item.nodeid} runs on SQLite only: let it run on PostgreSQL too, or mark it "
                "@pytest.mark.sqlite_itself(reason) if it is about SQLite itself"
            )
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        database = _database_of(item)
        about_sqlite = item.get_closest_marker("sqlite_itself") is not None
        if (database is not None and database not in chosen) or (about_sqlite and "sqlite" not in chosen):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def _no_sqlite_when_excluded(request: pytest.FixtureRequest) -> Iterator[None]:
    """With SQLite excluded from the test databases, a test that made the product's
    default SQLite store (`ledger.db` under a home in its tmp_path) used SQLite after all."""
    if "sqlite" in selected_databases() or "tmp_path" not in request.fixturenames:
        yield
        return
    root: Path = request.getfixturevalue("tmp_path")
    yield
    made = sorted(str(p.relative_to(root)) for p in root.rglob("ledger.db"))
    assert not made, f"SQLite store made although PROVENANCE_TEST_DATABASES excludes sqlite: {made}"


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
def ledger_env(deployment: Deployment, database_url: str, tmp_path: Path) -> Iterator[Ledger]:
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
        are the tools' own statistics (`hypothesis_cases`; schemathesis's, written by
        tests/schemathesis_statistics.py), each case once."""
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
    return ReliabilityRecorder(request.node)


def hypothesis_cases(test: Callable[[], None]) -> int:
    """Run a @given test and return how many valid test cases hypothesis itself counted
    in its generate phase (its own statistics: no discarded or overrun examples, no
    shrinking replays)."""
    from hypothesis.statistics import collector

    stats: list[dict[str, Any]] = []  # Any: hypothesis's statistics are JSON-like documents
    # hypothesis declares its collector's slot as None (DynamicVariable(None)); its own
    # pytest plugin puts a callback there the same way.
    with collector.with_value(stats.append):  # type: ignore[arg-type]
        test()
    assert stats, "hypothesis reported no statistics"
    cases = stats[-1].get("generate-phase", {}).get("test-cases", [])
    valid = sum(1 for case in cases if case.get("status") == "valid")
    assert valid > 0, stats[-1]
    return valid


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-json", default=None, help="write the reliability records here")


# Any: these become the JSON document of --reliability-json.
_OUTCOMES: dict[str, dict[str, Any]] = {}  # nodeid -> what happened to it, phase by phase
_SESSION: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: records faults or hostile inputs for the reliability report")
    config.addinivalue_line(
        "markers", "sqlite_itself(reason): about SQLite itself, so not run when PROVENANCE_TEST_DATABASES excludes it"
    )
    config.addinivalue_line(
        "markers", "alone: timing-sensitive; under pytest-xdist no other test of the run goes on meanwhile (run last)"
    )
    config.addinivalue_line("markers", "long: takes a minute or more; pytest-xdist workers start these first")


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _SESSION["started"] = time.time()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _select_databases(config, items)
    for item in items:
        if "reliability" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reliability)
    # The order pytest-xdist hands tests to its workers (scripts/test.sh: one or two at a
    # time, --maxschedchunk 1): the `long` ones first, so that none of them starts near the
    # end and keeps the run waiting on one worker; the rest as collected; the `alone` ones
    # last, when what they wait for (`_alone_under_xdist`) is short tests, not long ones.
    # A stable sort: the same order in every worker.
    items.sort(key=lambda item: 2 if item.get_closest_marker("alone") else 0 if item.get_closest_marker("long") else 1)


@pytest.fixture(autouse=True)
def _alone_under_xdist(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under pytest-xdist, a test marked `alone` runs while no other test of the run does:
    it takes `alone.lock` exclusively, every other test takes it shared. `alone.gate`
    makes a waiting `alone` test go first: it is held exclusively from before the wait,
    and other tests pass it (shared) before they take the lock. The files are in the
    run's own temporary folder (the parent of each worker's), so other runs on the
    machine are not held up. One process (no xdist): nothing to do."""
    if not hasattr(request.config, "workerinput"):
        yield
        return
    import fcntl

    folder = tmp_path_factory.getbasetemp().parent
    alone = request.node.get_closest_marker("alone") is not None
    with (folder / "alone.gate").open("a") as gate, (folder / "alone.lock").open("a") as lock:
        if alone:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)


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
        # user_properties holds objects; ours are the row dicts ReliabilityRecorder.record adds.
        entry["records"] = [
            dict(cast("dict[str, Any]", value)) for name, value in report.user_properties if name == "reliability"
        ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--reliability-json")
    # Under pytest-xdist each worker's reports (user_properties included) reach the
    # controller's pytest_runtest_logreport, so the controller alone holds every test's
    # outcome and records and writes the file; a worker (it has `workerinput`) holds only
    # its share and must not write over it.
    if not path or hasattr(session.config, "workerinput"):
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
