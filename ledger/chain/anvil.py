"""Start and stop a local anvil node for development and tests.

The binary comes from the npm package `@foundry-rs/anvil-linux-amd64` and is launched
directly (the `npx anvil` wrapper leaves the binary running when signalled). State can
be kept on disk between runs; the node listens on a free loopback port unless told.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_PACKAGE_BIN = REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
DEV_CHAIN_ID = 31337


class AnvilError(RuntimeError):
    """The local node could not be found, started or reached."""


def find_anvil_binary(override: Path | None = None) -> Path:
    """Path of the anvil binary: `override` (the settings' PROVENANCE_ANVIL_BIN), the npm
    package, or PATH."""
    if override is not None:
        return override
    if ANVIL_PACKAGE_BIN.exists():
        return ANVIL_PACKAGE_BIN
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise AnvilError(f"anvil not found: run `npm ci` (expected {ANVIL_PACKAGE_BIN}) or set PROVENANCE_ANVIL_BIN")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rpc_call(url: str, method: str, params: list[object] | None = None, timeout: float = 2.0) -> object:
    """One JSON-RPC call with the standard library (no web3 needed to probe a node)."""
    if not url.startswith(("http://", "https://")):
        raise AnvilError(f"not an HTTP RPC URL: {url!r}")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class AnvilNode:
    """A running anvil process. Use `start_anvil` to make one; `stop()` is idempotent."""

    process: subprocess.Popen[bytes]
    port: int
    chain_id: int
    state_file: Path | None
    log_file: Path | None
    _stopped: bool = field(default=False, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node with SIGTERM (anvil writes its state file then), SIGKILL if stuck."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """Stop the node abruptly (SIGKILL), as a crash would."""
        self._stopped = True
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_anvil(
    *,
    port: int | None = None,
    chain_id: int = DEV_CHAIN_ID,
    state_file: Path | None = None,
    state_interval: int | None = 1,
    block_time: float | None = None,
    log_file: Path | None = None,
    startup_timeout: float = 20.0,
    binary_path: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> AnvilNode:
    """Start anvil on 127.0.0.1 and return once it answers `eth_chainId`.

    With `state_file`, chain state is loaded from it if present and written back on
    stop; `state_interval` (seconds) also writes it periodically so a SIGKILL loses at
    most that much. Without `block_time`, anvil mines a block per transaction.
    """
    binary = find_anvil_binary(binary_path)
    port = port or free_port()
    args = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)]
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--state", str(state_file)]
        if state_interval:
            args += ["--state-interval", str(state_interval)]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    args += list(extra_args)  # e.g. ("--timestamp", "1700000000"): another genesis
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        out = log_file.open("ab")
    else:
        args.append("--silent")
        out = subprocess.DEVNULL  # type: ignore[assignment]
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    node = AnvilNode(process=process, port=port, chain_id=chain_id, state_file=state_file, log_file=log_file)
    deadline = time.monotonic() + startup_timeout
    while True:
        if process.poll() is not None:
            raise AnvilError(f"anvil exited with code {process.returncode} on start (port {port})")
        with contextlib.suppress(OSError, urllib.error.URLError, AnvilError):
            if int(str(rpc_call(node.rpc_url, "eth_chainId")), 16) == chain_id:
                return node
        if time.monotonic() > deadline:
            node.kill()
            raise AnvilError(f"anvil did not answer on {node.rpc_url} within {startup_timeout}s")
        time.sleep(0.02)


@contextlib.contextmanager
def running_anvil(**kwargs: object) -> Iterator[AnvilNode]:
    """Context manager around `start_anvil` that always stops the node."""
    node = start_anvil(**kwargs)  # type: ignore[arg-type]
    try:
        yield node
    finally:
        node.stop()
