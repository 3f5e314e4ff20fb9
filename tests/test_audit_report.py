"""The replay report reads for a person: the deployment as a sentence, and a summary
that says what each count counts."""

from __future__ import annotations

from ledger.audit import Discrepancy, ReplayReport, html_report

DEPLOYMENT = {"chainId": 31337, "ledger": "0x" + "11" * 20, "registry": "0x" + "22" * 20}


def report() -> ReplayReport:
    found = [
        Discrepancy("PAYLOAD_ALTERED", "the signed fields were changed", ["0x" + "aa" * 32]),
        Discrepancy("PAYLOAD_ALTERED", "the signature does not match the record", ["0x" + "bb" * 32]),
        Discrepancy("SEQUENCE_BROKEN", "batch 3 does not follow batch 1 (gap or broken link)", batch=3),
    ]
    return ReplayReport(DEPLOYMENT, 7, 42, discrepancies=found, attestations=10)


def test_the_summary_counts_discrepancies_by_kind_under_a_name_that_says_so() -> None:
    summary = report().to_json()["summary"]
    assert "byKind" not in summary
    assert summary["discrepanciesByKind"] == {"PAYLOAD_ALTERED": 2, "SEQUENCE_BROKEN": 1}
    assert sum(summary["discrepanciesByKind"].values()) == summary["discrepancies"]


def test_the_deployment_reads_as_a_sentence_in_json_and_html() -> None:
    sentence = f"ledger contract {DEPLOYMENT['ledger']} and registry contract {DEPLOYMENT['registry']} on chain 31337"
    data = report().to_json()
    assert data["deployment"] == DEPLOYMENT  # still machine-readable
    assert data["deploymentText"] == sentence
    page = html_report(report())
    assert f"Replayed the {sentence}, blocks 7 to 42." in page
    assert "{&quot;chainId&quot;" not in page and '{"chainId"' not in page  # no raw dict
