"""The HTTP API, over a real server on loopback: status codes, problem details, scopes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from api.app import create_app
from api.limits import parse_rate
from api.schemas import Verification
from ledger.access import create_api_key, revoke_api_key
from ledger.chain.anvil import free_port
from ledger.core import Ledger
from ledger.kinds import Kind
from ledger.store.models import AccessLogRow, AttestationRow

from .conftest import ReliabilityRecorder
from .scenario import Story, productions


class Server:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.port = free_port()
        app = create_app(ledger.settings, ledger)
        # These tests present many wrong keys on purpose; the failed-authentication limit
        # has its own tests (test_hostile_http.py).
        app.state.rate_limits.failed_auth = parse_rate("100000/minute")
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        _, self.customs = create_api_key(ledger.sessions, "customs lane", {"customs"})
        _, self.auditor = create_api_key(ledger.sessions, "auditor", {"auditor"})

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def api(ledger_env: Ledger) -> Iterator[Server]:
    server = Server(ledger_env)
    yield server
    server.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored(ledger: Ledger) -> int:
    with ledger.sessions() as session:
        return int(session.scalar(select(func.count(AttestationRow.id))) or 0)


def assert_problem(response: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def test_a_submission_is_201_once_durable_and_200_when_repeated(api: Server) -> None:
    submission = productions(api.ledger, 1)[0]
    first = api.http.post("/v1/attestations", json=submission)
    assert first.status_code == 201 and first.json() == {
        "status": "created",
        "uid": submission["uid"],
        "reason": None,
        "field": None,
        "detail": None,
    }
    assert stored(api.ledger) == 1  # committed before the answer
    again = api.http.post("/v1/attestations", json=submission)
    assert again.status_code == 200 and again.json()["status"] == "exists"
    assert stored(api.ledger) == 1


def test_rejections_are_problem_details_with_reason_and_field_and_store_nothing(
    api: Server, reliability: ReliabilityRecorder
) -> None:
    forged = productions(api.ledger, 1)[0]
    forged["signature"] = forged["signature"][:-2] + ("1c" if forged["signature"][-2:] == "1b" else "1b")
    body = assert_problem(api.http.post("/v1/attestations", json=forged), 422, "BAD_SIGNATURE")
    assert body["field"] == "signature"
    submission = productions(api.ledger, 1, prefix="X")[0]
    submission["payload"]["fields"]["lot"]["value"] = "LOT\u0000X"
    assert_problem(api.http.post("/v1/attestations", json=submission), 422, "PAYLOAD_MISMATCH")
    assert_problem(api.http.post("/v1/attestations", json={"typedData": {}}), 422, "MALFORMED")
    deep = ("[" * 100_000) + ("]" * 100_000)
    assert_problem(
        api.http.post("/v1/attestations", content=deep.encode(), headers={"content-type": "application/json"}), 400
    )
    assert api.http.get("/healthz").status_code == 200  # the process stays up
    assert stored(api.ledger) == 0
    reliability.record("input", "HTTP: signature with flipped v", 1, "422 problem+json BAD_SIGNATURE, field signature")
    reliability.record("input", "HTTP: NUL byte in a disclosed value", 1, "422 PAYLOAD_MISMATCH")
    reliability.record("input", "HTTP: empty typed data", 1, "422 problem+json MALFORMED, nothing stored")
    reliability.record("input", "HTTP: JSON nested 100,000 deep", 1, "400 problem+json; process stays up")


def test_oversized_bodies_and_batches_are_refused(api: Server, reliability: ReliabilityRecorder) -> None:
    huge = b'{"typedData": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    assert_problem(api.http.post("/v1/attestations", content=huge, headers={"content-type": "application/json"}), 413)
    items = productions(api.ledger, 501)  # valid, distinct: only their number is wrong
    body = assert_problem(api.http.post("/v1/attestations/batch", json=items), 413)
    assert "at most 500" in body["detail"]
    assert stored(api.ledger) == 0
    assert api.http.post("/v1/attestations/batch", json=items[:500]).status_code == 201  # the limit itself passes
    assert stored(api.ledger) == 500
    reliability.record("input", "HTTP: 9 MiB body", 1, "413 problem+json before parsing, nothing stored")
    reliability.record(
        "input", "HTTP: batch of 501 valid items (limit 500)", 1, "413 problem+json, nothing stored; 500 accepted"
    )


def test_unparseable_json_is_400_as_the_readme_says(api: Server) -> None:
    response = api.http.post("/v1/attestations", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 400)
    assert stored(api.ledger) == 0


def test_a_batch_of_1001_items_is_413_as_the_readme_says(api: Server) -> None:
    many = productions(api.ledger, 1)[0]
    assert_problem(api.http.post("/v1/attestations/batch", json=[many] * 1001), 413)


def test_a_batch_answers_each_item_and_stores_the_valid_ones(api: Server) -> None:
    items = productions(api.ledger, 3)
    response = api.http.post("/v1/attestations/batch", json=items)
    assert response.status_code == 201 and response.json()["created"] == 3
    broken = productions(api.ledger, 2, prefix="B")
    broken[1]["signature"] = "0x" + "00" * 65
    mixed = api.http.post("/v1/attestations/batch", json=[*broken, items[0]])
    assert mixed.status_code == 207
    assert [r["status"] for r in mixed.json()["results"]] == ["created", "rejected", "exists"]
    assert stored(api.ledger) == 4


def test_customs_endpoints_need_a_key_with_the_customs_scope(api: Server) -> None:
    story = Story(api.ledger)
    ids = story.clean_export()
    story.anchor()
    url = f"/v1/shipments/{ids['shipment']}/verify"
    assert_problem(api.http.post(url), 401)
    assert_problem(api.http.post(url, headers=auth("pl_nope_nope")), 401)
    assert_problem(api.http.post(url, headers=auth(api.auditor)), 403)
    ok = api.http.post(url, headers=auth(api.customs))
    assert ok.status_code == 200 and ok.json()["verdict"] == "VERIFIED"
    # The verdict as the `Verification` model shapes it (the endpoint encodes it itself).
    assert ok.headers["content-type"] == "application/json"
    assert ok.json() == Verification.model_validate(ok.json()).model_dump(mode="json")
    with api.ledger.sessions() as session:
        log = session.scalars(select(AccessLogRow)).all()
    assert [(row.shipment, row.verdict, row.action) for row in log] == [(ids["shipment"], "VERIFIED", "verify")]
    key_id = api.customs.split("_")[1]
    assert revoke_api_key(api.ledger.sessions, key_id)
    assert_problem(api.http.post(url, headers=auth(api.customs)), 401)


PUBLIC = {
    "/v1/attestations",
    "/v1/attestations/batch",
    "/v1/reason-codes",
    "/v1/console/finding-codes",
    "/v1/epcis/map",  # the participant's signatures authenticate an import
    "/v1/epcis/import",
    "/v1/ledger/batches/{index}",  # the public ledger, for mirroring nodes (checked against the chain)
    "/v1/ledger/direct/{uid}",
    "/v1/ledger/completeness",
    "/healthz",
    "/readyz",
    "/metrics",
}
PUBLIC |= {"/v1/kinds"} | {f"/v1/kinds/{kind.type_name}/check" for kind in Kind}  # reference: no secret


def test_every_protected_endpoint_refuses_no_key_a_wrong_scope_and_a_revoked_key(
    api: Server, reliability: ReliabilityRecorder
) -> None:
    story = Story(api.ledger)
    ids = story.clean_export()
    story.anchor()
    bundle = api.ledger.export_bundle(ids["shipment"])
    finding_story = Story(api.ledger)
    finding_story.sign(
        "customs", Kind.CUSTOMS_FINDING, {"finding": "COUNTERFEIT_SUSPECTED"}, "f", [ids["shipment"]], ingest=False
    )
    maker = story.last["typedData"]["message"]["attester"]
    stored_asset = api.ledger.get_attestation(ids["asset"])
    assert stored_asset is not None
    disclosure = {"format": "provenance-ledger/disclosure@1", "uid": ids["asset"], "payload": stored_asset["payload"]}
    # (method, path template, concrete path, body, scopes that may call it)
    table: list[tuple[str, str, str, Any, set[str]]] = [
        ("GET", "/v1/attestations/{uid}", f"/v1/attestations/{ids['made']}", None, {"customs", "auditor"}),
        ("GET", "/v1/lots/{lot}/custody", "/v1/lots/LOT-1/custody", None, {"customs", "auditor"}),
        ("POST", "/v1/shipments/{uid}/verify", f"/v1/shipments/{ids['shipment']}/verify", None, {"customs"}),
        ("POST", "/v1/bundles/verify", "/v1/bundles/verify", bundle, {"customs"}),
        ("GET", "/v1/shipments/{uid}/bundle", f"/v1/shipments/{ids['shipment']}/bundle", None, {"customs", "auditor"}),
        ("POST", "/v1/findings", "/v1/findings", finding_story.last, {"customs"}),
        ("GET", "/v1/participants/{address}", f"/v1/participants/{maker}", None, {"customs", "auditor"}),
        ("GET", "/v1/batches", "/v1/batches", None, {"customs", "auditor"}),
        ("GET", "/v1/lots/{lot}/epcis", "/v1/lots/LOT-1/epcis", None, {"customs", "auditor"}),
        ("GET", "/v1/shipments/{uid}/epcis", f"/v1/shipments/{ids['shipment']}/epcis", None, {"customs", "auditor"}),
        ("GET", "/v1/console/me", "/v1/console/me", None, {"customs", "auditor"}),
        ("GET", "/v1/console/lookup", "/v1/console/lookup?q=LOT-1", None, {"customs", "auditor"}),
        ("GET", "/v1/console/queue", "/v1/console/queue", None, {"customs", "auditor"}),
        (
            "POST",
            "/v1/console/findings",
            "/v1/console/findings",
            {"shipment": ids["shipment"], "finding": "INSPECTED_OK"},
            {"customs"},
        ),
        (
            "POST",
            "/v1/attestations/{uid}/disclosures",
            f"/v1/attestations/{ids['asset']}/disclosures",
            disclosure,
            {"customs"},
        ),
    ]
    documented = set(api.http.get("/openapi.json").json()["paths"])
    assert documented - PUBLIC == {row[1] for row in table}, "an endpoint is missing from the access table"
    keys = {scope: create_api_key(api.ledger.sessions, scope, {scope})[1] for scope in ("customs", "auditor", "admin")}
    revoked = {scope: create_api_key(api.ledger.sessions, f"old {scope}", {scope}) for scope in ("customs", "auditor")}
    for key, _ in revoked.values():
        assert revoke_api_key(api.ledger.sessions, key.id)
    checked = 0
    for method, _template, path, body, allowed in table:

        def call(headers: dict[str, str]) -> httpx.Response:
            return api.http.request(method, path, json=body, headers=headers)  # noqa: B023 - used in this iteration

        assert_problem(call({}), 401)
        assert_problem(call(auth("pl_unknown_0000")), 401)
        for scope, token in keys.items():
            response = call(auth(token))
            if scope in allowed or scope == "admin":  # admin holds every scope
                assert response.status_code in (200, 201), (path, scope, response.text)
            else:
                assert_problem(response, 403)
        for scope in allowed:
            assert_problem(call(auth(revoked[scope][1])), 401)
        checked += 1
    with api.ledger.sessions() as session:
        verified = session.scalar(select(func.count(AccessLogRow.id)))
    assert verified and verified >= 2, "customs calls are logged"
    reliability.record("access", "no credential", checked, "401 problem+json on every protected endpoint")
    reliability.record("access", "unknown key", checked, "401 on every protected endpoint")
    reliability.record(
        "access",
        "key of a scope the endpoint does not admit",
        sum(2 - len(row[4]) for row in table),
        "403 on every protected endpoint",
    )
    reliability.record(
        "access",
        "revoked key of an admitted scope",
        sum(len(row[4]) for row in table),
        "401 on every protected endpoint",
    )


def test_auditors_read_attestations_bundles_batches_and_participants(api: Server) -> None:
    story = Story(api.ledger)
    ids = story.clean_export()
    story.anchor()
    record = api.http.get(f"/v1/attestations/{ids['made']}", headers=auth(api.auditor))
    assert record.status_code == 200 and record.json()["anchor"]["status"] == "anchored"
    assert record.json()["anchor"]["proof"]
    assert_problem(api.http.get(f"/v1/attestations/0x{'00' * 32}", headers=auth(api.auditor)), 404)
    assert_problem(api.http.get("/v1/attestations/not-a-uid", headers=auth(api.auditor)), 422)
    bundle = api.http.get(f"/v1/shipments/{ids['shipment']}/bundle", headers=auth(api.auditor))
    assert bundle.status_code == 200 and len(bundle.json()["attestations"]) == 6  # the shipment's history
    verdict = api.http.post("/v1/bundles/verify", json=bundle.json(), headers=auth(api.customs))
    assert verdict.status_code == 200 and verdict.json()["verdict"] == "VERIFIED"
    batches = api.http.get("/v1/batches", headers=auth(api.auditor)).json()["batches"]
    assert batches and batches[0]["status"] == "anchored"
    maker = json.loads(json.dumps(story.last["typedData"]["message"]["attester"]))
    participant = api.http.get(f"/v1/participants/{maker}", headers=auth(api.auditor))
    assert participant.status_code == 200 and participant.json()["roles"] == ["exporter"]
    custody = api.http.get("/v1/lots/LOT-1/custody", headers=auth(api.auditor)).json()
    assert len(custody["nodes"]) >= 4 and custody["edges"]


def test_customs_findings_are_recorded_by_customs_only(api: Server) -> None:
    story = Story(api.ledger)
    ids = story.clean_export()
    story.sign(
        "customs", Kind.CUSTOMS_FINDING, {"finding": "COUNTERFEIT_SUSPECTED"}, "f", [ids["shipment"]], ingest=False
    )
    finding = {k: v for k, v in story.last.items()}
    assert_problem(api.http.post("/v1/findings", json=finding, headers=auth(api.auditor)), 403)
    assert api.http.post("/v1/findings", json=finding, headers=auth(api.customs)).status_code == 201
    not_a_finding = productions(api.ledger, 1)[0]
    assert_problem(api.http.post("/v1/findings", json=not_a_finding, headers=auth(api.customs)), 422, "MALFORMED")


def test_health_readiness_metrics_reason_codes_and_openapi(api: Server) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    assert api.http.get("/readyz").json() == {"ready": True, "database": "ok", "chain": "ok"}
    api.http.post("/v1/attestations", json=productions(api.ledger, 1)[0])
    metrics = api.http.get("/metrics").text
    assert 'provenance_attestations_total{outcome="created"} 1.0' in metrics
    codes = api.http.get("/v1/reason-codes").json()
    assert {"code": "CUSTODY_FORK"}.items() <= next(c for c in codes if c["code"] == "CUSTODY_FORK").items()
    spec = api.http.get("/openapi.json").json()
    for path in [
        "/v1/attestations",
        "/v1/attestations/batch",
        "/v1/attestations/{uid}",
        "/v1/lots/{lot}/custody",
        "/v1/shipments/{uid}/verify",
        "/v1/bundles/verify",
        "/v1/shipments/{uid}/bundle",
        "/v1/findings",
        "/v1/participants/{address}",
        "/v1/batches",
        "/healthz",
        "/readyz",
        "/metrics",
    ]:
        assert path in spec["paths"], path
    assert "WATCHLIST_HIT" in spec["info"]["description"]
    for path in ["/v1/shipments/{uid}/verify", "/v1/bundles/verify"]:  # answered as encoded by the endpoint
        answer = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        assert answer["schema"] == {"$ref": "#/components/schemas/Verification"}, path


def test_an_unexpected_error_is_a_500_problem_and_every_request_is_timed_by_route(api: Server) -> None:
    @api.app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    assert_problem(api.http.get("/test-only/boom"), 500)
    assert api.http.get("/healthz").status_code == 200
    assert api.http.get("/nowhere").status_code == 404
    metrics = api.http.get("/metrics").text
    for route, status in [("/test-only/boom", 500), ("/healthz", 200), ("unmatched", 404)]:
        assert f'provenance_http_request_seconds_count{{route="{route}",status="{status}"}} 1.0' in metrics, route


def test_requests_beyond_the_rate_limit_get_429(api: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.limits import RateLimits, parse_rate

    api.app.state.rate_limits = RateLimits(parse_rate("3/minute"), parse_rate("20/minute"), None, "t")
    codes = [api.http.get("/v1/batches", headers=auth(api.auditor)).status_code for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]


def test_an_exporter_signs_and_submits_from_the_command_line(api: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real subprocesses: a new encrypted key is admitted, signs a YAML payload, submits."""
    import os
    import subprocess
    import sys

    from web3 import Web3

    from ledger.chain.accounts import dev_account
    from ledger.chain.client import call_and_send
    from ledger.chain.deploy import FOREVER
    from ledger.roles import Role

    from .conftest import REPO

    env = {**os.environ, "PROVENANCE_HOME": str(tmp_path), "PROVENANCE_KEY_PASSWORD": "s3cret-pass"}
    cli = [sys.executable, "-m", "ledger.cli"]
    made = subprocess.run(
        [*cli, "keys", "new", "--out", str(tmp_path / "maker.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    address = made.stdout.strip()
    assert (tmp_path / "maker.json").stat().st_mode & 0o777 == 0o600
    ledger = api.ledger
    call_and_send(
        ledger.deployment.w3,
        dev_account(0),
        ledger.deployment.registry.functions.admit(
            Web3.to_checksum_address(address), b"\x07" * 32, int(Role.MANUFACTURER), 0, FOREVER
        ),
    )
    time.sleep(1.1)
    ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    ledger.deployment.manifest.save(tmp_path / "deployment.json")
    (tmp_path / "lot.yaml").write_text(
        "lot: LOT-CLI-1\nquantity: 250\nunit: pcs\ngoodsClass: '841370'\nunitCost: 12.5\n"
    )
    command = [
        *cli,
        "sign",
        "production",
        "--fields",
        str(tmp_path / "lot.yaml"),
        "--subject",
        "lot:LOT-CLI-1",
        "--keystore",
        str(tmp_path / "maker.json"),
        "--confidential",
        "unitCost",
        "--submit",
        f"http://127.0.0.1:{api.port}",
        "--json",
    ]
    signed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert signed.returncode == 0, signed.stderr + signed.stdout
    uid = json.loads(signed.stdout)["uid"]
    record = ledger.get_attestation(uid, include_confidential=True)
    assert record is not None and record["payload"]["fields"]["unitCost"]["value"] == 12.5
    status = subprocess.run(
        [*cli, "status", uid, "--api", f"http://127.0.0.1:{api.port}", "--key", api.auditor],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0 and status.stdout.strip() == "pending"
    wrong = subprocess.run(
        [
            *cli,
            "sign",
            "shipment",
            "--fields",
            str(tmp_path / "lot.yaml"),
            "--subject",
            "s",
            "--keystore",
            str(tmp_path / "maker.json"),
            "--submit",
            f"http://127.0.0.1:{api.port}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1 and "rejected: FIELD_INVALID" in wrong.stderr


def test_a_rate_limit_is_read_as_written() -> None:
    """A bare number is requests per second, however large (a million used to be written
    as `1e+06/second` on its way to the `limits` library, which refused it); anything else
    is a `limits` expression, and what is neither is refused by name."""
    assert (parse_rate("1000000").amount, parse_rate("1000000").get_expiry()) == (1_000_000, 1)
    assert (parse_rate(" 500 ").amount, parse_rate("20/minute").get_expiry()) == (500, 60)
    for bad in ("2.5", "-5", "fast", ""):
        with pytest.raises(ValueError, match="not a rate limit"):
            parse_rate(bad)


def test_the_in_process_rate_limit_starts_no_thread_per_request() -> None:
    """The library's in-memory storage started a timer thread for its expiry sweep
    whenever the last one had ended (up to a hundred a second under load); ours sweeps
    inline, at most once a second (that it still forgets callers: test_hostile_http)."""
    from api.limits import RateLimits

    limits = RateLimits(parse_rate("3/minute"), parse_rate("2/minute"), None, "t")
    sweeper = limits.storage.timer  # type: ignore[attr-defined]  # the one the constructor starts
    sweeper.join()
    answers = [limits.allow("key:a")[0] for _ in range(4)]
    assert answers == [True, True, True, False]  # still counted and enforced
    assert limits.auth_failed("192.0.2.1")[0] and limits.auth_failed("192.0.2.1")[0]
    assert limits.auth_blocked("192.0.2.1")[0]
    assert limits.storage.timer is sweeper  # type: ignore[attr-defined]  # no new thread


def test_readiness_waits_for_the_warm_up_then_the_node_is_kept_warm(api: Server) -> None:
    """While the node's warm-up runs, /readyz answers 503 naming it (with its latest
    progress line); once it is done, the node is ready and the same thread keeps the
    node's views fresh until the service stops."""
    from api.app import WarmUp

    release = threading.Event()
    kept = threading.Event()

    class Warming:
        def warm_up(self, progress: Any) -> dict[str, float]:
            progress("warm-up: licences read and checked: 1 of 2")
            release.wait(30)
            return {}

        def keep_warm(self, stop: threading.Event) -> None:
            kept.set()
            stop.wait(30)

    warming = WarmUp(Warming())  # type: ignore[arg-type]
    api.app.state.warm_up = warming
    warming.start()
    try:
        deadline = time.monotonic() + 10
        while warming.status == "starting" and time.monotonic() < deadline:
            time.sleep(0.01)
        response = api.http.get("/readyz")
        assert response.status_code == 503, response.text
        assert response.json()["warm-up"] == "in progress: warm-up: licences read and checked: 1 of 2"
        release.set()
        assert kept.wait(10)
        assert api.http.get("/readyz").json() == {"ready": True, "database": "ok", "chain": "ok"}
    finally:
        release.set()
        warming.stop.set()
