"""Shared fixtures: a real anvil chain, fresh deployments, real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
    """A fresh, empty database: a SQLite file, or a PostgreSQL database created and dropped here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
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
# fixture. With --reliability-json PATH, the session writes every record together with
# the test's outcome; scripts/reliability_report.py turns that into the Markdown report,
# so the report's figures are the tests' own.


class ReliabilityRecorder:
    """What one test injected: group, class of fault or input, how many times, outcome."""

    def __init__(self, node: pytest.Item) -> None:
        self.node = node

    def record(self, group: str, what: str, tried: int, outcome: str) -> None:
        """`group` is one of fault, input, access, fuzz, property; `outcome` says what the
        test observed (and asserted) about every one of the `tried` injections."""
        assert group in {"fault", "input", "access", "fuzz", "property"}, group
        assert tried > 0, "a record must count what was actually tried"
        self.node.user_properties.append(
            ("reliability", {"group": group, "what": what, "tried": tried, "outcome": outcome})
        )


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> ReliabilityRecorder:
    return ReliabilityRecorder(request.node)  # type: ignore[arg-type]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-json", default=None, help="write the reliability records here")


_RELIABILITY_ROWS: list[dict[str, object]] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """A fault test stops the machine's PostgreSQL and always restarts it; should a run
    have been killed during that outage, start the cluster again before testing."""
    import shutil
    import subprocess

    import psycopg

    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        pass
    if shutil.which("pg_lsclusters") is None:
        return
    for line in subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.splitlines():
        version, name, port, status, *_ = line.split()
        if port == "5432" and status == "down":
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], check=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: records faults or hostile inputs for the reliability report")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "reliability" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reliability)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "reliability":
            row = dict(value)  # type: ignore[call-overload]
            row.update(test=report.nodeid, passed=report.outcome == "passed", seconds=round(report.duration, 2))
            _RELIABILITY_ROWS.append(row)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--reliability-json")
    if path:
        import json

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(_RELIABILITY_ROWS, indent=1))
