"""The customs officer's console at /console, in Debian's Chromium driven by Playwright
(tests/js/console_e2e.js), against a real server over a real ledger on anvil, seeded
with the demo story (a VERIFIED and a FLAGGED shipment). Screenshots of each state go
to build/console/, or to the folder PROVENANCE_SCREENSHOTS names (the README's pictures
are refreshed with PROVENANCE_SCREENSHOTS=docs/console): a test run never rewrites
tracked files."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from api.console_routes import CONSOLE_DIST
from ledger.core import Ledger
from ledger.demo import seed_demo

from .conftest import REPO
from .scenario import Story
from .test_api import Server, auth

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / os.environ.get("PROVENANCE_SCREENSHOTS", "build/console")
# The demo lot read from a GS1 Digital Link (GTIN 09506000134352, batch/lot AI 10).
DIGITAL_LINK = "https://id.example.org/01/09506000134352/10/LOT-2026-0042"


class AnsweringVerified:
    """A compromised service: its bundle verification answers VERIFIED (a canned honest
    verdict) whatever it is shown. Every other route is the real service's."""

    def __init__(self, app: ASGIApp, verdict: dict[str, Any]) -> None:
        self.app = app
        self.body = json.dumps(verdict).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/bundles/verify":
            while (await receive()).get("more_body"):
                pass
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(self.body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)


@pytest.fixture
def demo(ledger_env: Ledger) -> Iterator[tuple[Ledger, dict[str, str]]]:
    ids = seed_demo(ledger_env)
    Story(ledger_env).anchor()
    # The anchoring worker keeps running, as in the embedded setup, so a finding recorded
    # from the console is anchored like any other record.
    stop = threading.Event()
    worker = ledger_env.anchoring_worker(confirmations=1, max_age=0.0)
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"interval": 0.2}, daemon=True)
    thread.start()
    yield ledger_env, ids
    stop.set()
    thread.join(timeout=10)


def test_officer_console_in_chromium_and_compromised_server_cannot_pass_off_a_tampered_bundle(
    demo: tuple[Ledger, dict[str, str]], tmp_path: Path
) -> None:
    if not (CONSOLE_DIST / "index.html").is_file():
        pytest.fail("the console is not built: run scripts/install.sh (it builds console/ into api/console_dist/)")
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.fail("Debian's chromium (/usr/bin/chromium) and node are needed: run scripts/install.sh as root")
    ledger, ids = demo
    honest = Server(ledger)
    compromised = Server(ledger)
    try:
        bundle = honest.http.get(f"/v1/shipments/{ids['shipment']}/bundle", headers=auth(honest.customs)).json()
        verified = honest.http.post("/v1/bundles/verify", json=bundle, headers=auth(honest.customs)).json()
        assert verified["verdict"] == "VERIFIED", verified
        # Connections opened from now on are served by the compromised app.
        config_ = compromised.server.config
        config_.loaded_app = AnsweringVerified(config_.loaded_app, verified)
        # The exporter's tampered copy: the shipment's disclosed destination changed from
        # FR to DE, every signature untouched.
        tampered = copy.deepcopy(bundle)
        [shipment] = [a for a in tampered["attestations"] if a["uid"] == ids["shipment"]]
        shipment["payload"]["fields"]["destination"]["value"] = "DE"
        (tmp_path / "bundle.json").write_text(json.dumps(bundle))
        (tmp_path / "tampered-bundle.json").write_text(json.dumps(tampered))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        config = {
            "chromium": str(CHROMIUM),
            "base": f"http://127.0.0.1:{honest.port}",
            "compromisedBase": f"http://127.0.0.1:{compromised.port}",
            "customsKey": honest.customs,
            "auditorKey": honest.auditor,
            "verifiedShipment": "SHP-FR-0001",
            "flaggedShipment": "SHP-US-0002",
            "bundle": str(tmp_path / "bundle.json"),
            "tamperedBundle": str(tmp_path / "tampered-bundle.json"),
            "digitalLink": DIGITAL_LINK,
            "qrImage": str(tmp_path / "digital-link-qr.png"),
            "screenshots": str(SCREENSHOTS),
        }
        (tmp_path / "config.json").write_text(json.dumps(config))
        run = subprocess.run(
            ["node", str(REPO / "tests" / "js" / "console_e2e.js"), str(tmp_path / "config.json")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(run.stdout[-4000:])
        assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
        stories = json.loads(run.stdout.strip().splitlines()[-1])
        assert stories == {
            "wrong key refused": "passed",
            "auditor signs in read-only and is refused a verdict": "passed",
            "verified shipment by id, independently confirmed": "passed",
            "flagged shipment by id, offending edge marked": "passed",
            "work queue opens a flagged verdict": "passed",
            "dropped bundle verified and confirmed": "passed",
            "qr image of a digital link finds the lot's shipments": "passed",
            "finding recorded with the customs key counts": "passed",
            "phone-sized, keyboard only, no serious accessibility violations": "passed",
            "compromised server says VERIFIED, the browser catches the tampered bundle": "passed",
        }
        # The finding recorded from the page is signed by the customs key and counts.
        again = honest.http.post(f"/v1/shipments/{ids['shipment']}/verify", headers=auth(honest.customs)).json()
        assert "PRIOR_FINDING" in again["reasons"]
    finally:
        compromised.stop()
        honest.stop()
