"""The `provenance` command brings up the embedded chain and deploys (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from ledger.chain.anvil import AnvilNode, free_port
from ledger.chain.client import Deployment, connect
from ledger.chain.manifest import Manifest

from .conftest import REPO

PROVENANCE = [sys.executable, "-m", "api.cli"]  # the full command line (with up and serve)


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PROVENANCE_HOME": str(home), **extra}


@pytest.mark.long
def test_up_brings_up_a_working_system_whose_demo_shipment_verifies(
    tmp_path: Path, default_store_env: dict[str, str]
) -> None:
    """The README's first command: chain, contracts, database, demo story, worker and API."""
    import httpx

    port, api_port = free_port(), free_port()
    env = _env(tmp_path, PROVENANCE_ANVIL_PORT=str(port), PROVENANCE_API_PORT=str(api_port), **default_store_env)
    proc = subprocess.Popen(
        [*PROVENANCE, "up"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        demo_file = tmp_path / "demo.json"
        verdict = None
        while verdict != "VERIFIED":
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"demo shipment not verified in time (last: {verdict})"
            time.sleep(0.5)
            if not demo_file.exists():
                continue
            demo = json.loads(demo_file.read_text())
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{api_port}/v1/shipments/{demo['shipment']}/verify",
                    headers={"Authorization": f"Bearer {demo['customsKey']}"},
                    timeout=10,
                )
            except httpx.HTTPError:
                continue
            verdict = answer.json().get("verdict")  # UNVERIFIABLE until the demo batch is anchored
        flagged = httpx.post(
            f"http://127.0.0.1:{api_port}/v1/shipments/{demo['flaggedShipment']}/verify",
            headers={"Authorization": f"Bearer {demo['customsKey']}"},
            timeout=10,
        ).json()
        assert flagged["verdict"] == "FLAGGED" and set(flagged["reasons"]) == {"LICENCE_TERRITORY", "WATCHLIST_HIT"}
        # The printed `provenance verify` command: exit code 10 for FLAGGED.
        cli = subprocess.run(
            [*PROVENANCE, "verify", demo["flaggedShipment"]],
            cwd=REPO,
            env={**env, "PROVENANCE_RPC_URL": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 10 and "FLAGGED" in cli.stdout, cli.stderr
        manifest = Manifest.load(tmp_path / "deployment.json")
        w3 = connect(f"http://127.0.0.1:{port}")
        Deployment(w3, manifest).check_chain()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert manifest.ledger in out and demo["customsKey"] in out and "provenance verify" in out
    # A second start reuses the chain state and the deployment instead of redeploying.
    again = subprocess.run(
        [*PROVENANCE, "up", "--exit-after-deploy"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert Manifest.load(tmp_path / "deployment.json") == manifest


def test_deploy_command_targets_any_rpc_url(anvil: AnvilNode, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    result = subprocess.run(
        [*PROVENANCE, "deploy", "--rpc-url", anvil.rpc_url, "--out", str(out), "--json"],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    Deployment(connect(anvil.rpc_url), Manifest.load(out)).check_chain()


def test_deploy_to_an_unreachable_node_fails_with_exit_code_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PROVENANCE, "deploy", "--rpc-url", f"http://127.0.0.1:{free_port()}"],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no answer" in result.stderr


@pytest.mark.long
def test_the_registrar_manages_participants_from_the_command_line(deployment: Deployment, tmp_path: Path) -> None:
    from ledger.roles import Role

    manifest = deployment.manifest.save(tmp_path / "deployment.json")
    env = _env(tmp_path, PROVENANCE_MANIFEST=str(manifest), PROVENANCE_RPC_URL=deployment.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    newcomer = Web3.to_checksum_address("0x" + "5a" * 20)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PROVENANCE, "participant", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )

    admitted = run("admit", newcomer, "--roles", "exporter,carrier", "--name", "EORI:FR123")
    assert admitted.returncode == 0, admitted.stderr
    registry = deployment.registry
    assert registry.functions.rolesAt(newcomer, deployment.now()).call() == int(Role.EXPORTER | Role.CARRIER)
    assert run("suspend", newcomer, "--reason", "audit").returncode == 0
    assert registry.functions.participant(newcomer).call()[2] is True
    again = run("suspend", newcomer, "--reason", "twice")
    assert again.returncode == 3 and "SuspensionUnchanged" in again.stderr
    assert run("admit", newcomer, "--roles", "pilot", "--name", "x").returncode == 1
