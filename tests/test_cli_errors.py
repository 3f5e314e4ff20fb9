"""Errors, not tracebacks: each mistake a new user makes gets one line saying what is
wrong and what to do, and the documented exit code (1 bad input, 2 unreachable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ledger.chain.client import Deployment
from ledger.cli.main import app

DEV_EXPORTER = "4"  # anvil's account 4


def run(home: Path, *args: str, **env: str) -> Result:
    result = CliRunner().invoke(app, list(args), env={"PROVENANCE_HOME": str(home), **env})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def on_chain(deployment: Deployment, tmp_path: Path) -> dict[str, str]:
    deployment.manifest.save(tmp_path / "deployment.json")
    return {"PROVENANCE_RPC_URL": deployment.w3.provider.endpoint_uri}  # type: ignore[attr-defined]


def test_malformed_yaml_or_json_fields_name_the_file_line_and_column(tmp_path: Path, on_chain: dict[str, str]) -> None:
    bad_yaml = tmp_path / "f.yaml"
    bad_yaml.write_text("title: ok\ndesign: [unclosed\n")
    result = run(
        tmp_path, "sign", "ip_asset", "--fields", str(bad_yaml), "--subject", "a", "--dev-key", "2", **on_chain
    )
    assert result.exit_code == 1
    assert f"{bad_yaml}:3:1: not valid YAML" in result.output
    bad_json = tmp_path / "f.json"
    bad_json.write_text('{"title": "ok",\n "design": }')
    result = run(
        tmp_path, "sign", "ip_asset", "--fields", str(bad_json), "--subject", "a", "--dev-key", "2", **on_chain
    )
    assert result.exit_code == 1 and f"{bad_json}:2:12: not valid JSON" in result.output


def test_a_typo_in_disclose_or_confidential_is_refused_listing_the_fields(
    tmp_path: Path, on_chain: dict[str, str]
) -> None:
    fields = tmp_path / "asset.yaml"
    fields.write_text("title: Impeller\ndesign: secret\n")
    for option in ("--disclose", "--confidential"):
        result = run(
            tmp_path, "sign", "ip_asset", "--fields", str(fields), "--subject", "a", "--dev-key", "2", option, "titel",
            **on_chain,
        )  # fmt: skip
        assert result.exit_code == 1
        assert f"{option}: titel is not a field of this IpAsset; its fields are design, title" in result.output
    assert not (tmp_path / "holder").exists()  # nothing signed, nothing kept


def test_a_short_address_names_the_expected_form(tmp_path: Path, on_chain: dict[str, str]) -> None:
    result = run(tmp_path, "participant", "admit", "0x1234", "--roles", "exporter", "--name", "X", **on_chain)
    assert result.exit_code == 1
    assert "'0x1234' is not an address: expected 0x followed by 40 hex digits" in result.output


def test_a_missing_manifest_says_where_it_looked_and_what_to_set(tmp_path: Path) -> None:
    result = run(tmp_path / "elsewhere", "verify", "0x" + "11" * 32)
    assert result.exit_code == 1
    assert f"no deployment manifest at {tmp_path / 'elsewhere' / 'deployment.json'}" in result.output
    assert "PROVENANCE_HOME" in result.output and "PROVENANCE_MANIFEST" in result.output


def test_verify_bundle_on_a_file_that_is_not_a_bundle_is_bad_input(tmp_path: Path) -> None:
    not_a_bundle = tmp_path / "notes.json"
    not_a_bundle.write_text(json.dumps({"hello": "customs"}))
    result = run(tmp_path, "verify-bundle", str(not_a_bundle))
    assert result.exit_code == 1 and "not a proof bundle" in result.output


def test_status_without_a_key_says_how_to_give_one_and_uses_the_configured_port(tmp_path: Path) -> None:
    result = run(tmp_path, "status", "0x" + "11" * 32, PROVENANCE_API_PORT="1")
    assert result.exit_code == 1
    assert "no API key: pass --key or set PROVENANCE_API_KEY" in result.output
    unreachable = run(tmp_path, "status", "0x" + "11" * 32, PROVENANCE_API_PORT="1", PROVENANCE_API_KEY="k")
    assert unreachable.exit_code == 2 and "the API at http://127.0.0.1:1 did not answer" in unreachable.output
