"""Every kind explains itself from one source (ledger/fields.py): the command line, the
docs, the OpenAPI document and the rules that validate submissions say the same."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.core import Ledger
from ledger.fields import FIELD_DOCS, FIELD_TYPES, RULES
from ledger.ingest import Rejected
from ledger.kinds import Kind
from ledger.kinds_doc import markdown
from ledger.reasons import Reason
from ledger.submission import build_submission

from .conftest import REPO
from .scenario import actor, signing_time
from .test_api import Server


def test_the_published_description_names_exactly_the_fields_the_rules_check() -> None:
    for kind, (required, optional, _lo, _hi) in RULES.items():
        assert set(FIELD_DOCS[kind]) == set(required) | set(optional), kind
        assert all(doc.type in FIELD_TYPES for doc in FIELD_DOCS[kind].values())


def test_docs_kinds_md_is_the_generated_table() -> None:
    assert (REPO / "docs" / "kinds.md").read_text() == markdown(), "run: python -m ledger.kinds_doc > docs/kinds.md"


def test_an_exporter_reads_a_kinds_fields_from_the_command_line() -> None:
    listing = CliRunner().invoke(app, ["kinds"])
    assert listing.exit_code == 0
    assert "Shipment" in listing.output and "destination" in listing.output
    shown = CliRunner().invoke(app, ["kinds", "show", "Shipment"])
    assert shown.exit_code == 0, shown.output
    assert "destination  (required, country)" in shown.output
    assert "checked by: licensing, watchlist" in shown.output
    unknown = CliRunner().invoke(app, ["kinds", "show", "Shipmnet"])
    assert unknown.exit_code == 1 and "known: IpAsset, Licence" in unknown.output


def test_a_submission_with_several_problems_names_all_of_them(ledger_env: Ledger) -> None:
    bad = build_submission(
        actor("exporter"),
        Kind.SHIPMENT,
        ledger_env.domain,
        {"quantity": -3, "unit": "pcs", "goodsClass": "84 13", "destination": "France"},
        subject="shipment",
        refs=["0x" + "11" * 32],
        issued_at=signing_time(ledger_env),
    )
    with pytest.raises(Rejected) as refused:
        ledger_env.ingest(bad)
    assert refused.value.reason is Reason.FIELD_INVALID
    assert [e["field"] for e in refused.value.errors] == ["quantity", "goodsClass", "destination"]
    assert "payload.fields.destination" in refused.value.detail


@pytest.fixture
def api(ledger_env: Ledger) -> Iterator[Server]:
    server = Server(ledger_env)
    yield server
    server.stop()


def test_the_openapi_document_carries_a_json_schema_per_kind_and_a_check_before_signing(api: Server) -> None:
    components = api.http.get("/openapi.json").json()["components"]["schemas"]
    shipment = components["ShipmentFields"]
    assert shipment["required"] == ["quantity", "unit", "goodsClass", "destination"]
    assert shipment["properties"]["destination"]["pattern"] == "^[A-Z]{2}$"
    assert {f"{k.type_name}Fields" for k in Kind} <= set(components)
    answer = api.http.post("/v1/kinds/Shipment/check", json={"quantity": 0, "unit": "pcs", "goodsClass": "8413"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert [e["field"] for e in body["errors"]] == ["quantity", "destination"]
    ok = api.http.post(
        "/v1/kinds/Shipment/check", json={"quantity": 5, "unit": "pcs", "goodsClass": "8413", "destination": "FR"}
    )
    assert ok.json() == {"kind": "Shipment", "valid": True, "errors": []}
