"""Schema-driven fuzzing: schemathesis generates requests from the service's own OpenAPI
document and runs them against a real server (a subprocess of its CLI against a live
uvicorn on loopback). No 500s, every response matches the documented schema and status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.access import create_api_key
from ledger.core import Ledger

from .conftest import ReliabilityRecorder
from .scenario import Story
from .test_api import Server

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture
def api(ledger_env: Ledger) -> Iterator[Server]:
    Story(ledger_env).clean_export()  # real records for the read endpoints to find
    server = Server(ledger_env)
    yield server
    server.stop()


@pytest.mark.long
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    api: Server, tmp_path: Path, reliability: ReliabilityRecorder
) -> None:
    _, token = create_api_key(api.ledger.sessions, "fuzzer", {"customs", "auditor", "admin"})
    from api.limits import RateLimits, parse_rate

    unlimited = parse_rate("1000000000/second")
    api.app.state.rate_limits = RateLimits(unlimited, unlimited, None, "fuzz")
    statistics = tmp_path / "schemathesis-statistics.json"
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"http://127.0.0.1:{api.port}/openapi.json",
            "--checks",
            CHECKS,
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "40",
            "--seed",
            "20261128",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "30",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("schemathesis_statistics.py")),
            "FUZZ_STATISTICS_JSON": str(statistics),
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # schemathesis's own statistics (tests/schemathesis_statistics.py), not its printed text.
    counted = json.loads(statistics.read_text())
    cases, operations = int(counted["cases"]), counted["operations"]
    assert counted["stop_reason"] == "COMPLETED" and cases > 500, counted
    reliability.record(
        "fuzz",
        f"schemathesis {CHECKS.replace(',', ', ')} against /openapi.json ({operations} operations)",
        cases,
        "no 500, no response outside the documented statuses, content types and schemas",
    )
