"""The one settings object (ledger/config.py): every documented variable reaches its
field, a bad value stops the start naming its variable in one line (checked on real
`provenance` processes), and nothing else in the core or the service reads the
environment.

The story behind the refusals: an operator's typo, or someone who can edit a
deployment's environment, must not quietly weaken the policy. A misspelt check name in
PROVENANCE_MANDATORY_CHECKS that was skipped would drop that check from what VERIFIED
requires; PROVENANCE_CONFIRMATIONS=0 would trust anchors a reorganisation can undo. The
process refuses to start instead, before it serves or anchors anything."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.config import Settings, SettingsError, variable_of
from ledger.verify.checks import CHECKS

REPO = Path(__file__).resolve().parent.parent
PROVENANCE = [sys.executable, "-m", "api.cli"]  # the composition root: main() builds the settings


def _clean_environment() -> dict[str, str]:
    """This process's environment without any PROVENANCE_ variable (the tests set theirs)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PROVENANCE_")}


@pytest.fixture
def no_provenance_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("PROVENANCE_"):
            monkeypatch.delenv(name)
    return monkeypatch


# ------------------------------------------------------------ refused at start-up


BAD_VALUES = [
    # (variable, value, what the one line must say besides the variable's name)
    ("PROVENANCE_CONFIRMATIONS", "-1", "must be at least 1"),
    ("PROVENANCE_CONFIRMATIONS", "0", "must be at least 1"),
    ("PROVENANCE_MANDATORY_CHECKS", "integrity,custdy", "unknown checks ['custdy']"),
    ("PROVENANCE_RPC_URLS", "http://127.0.0.1:8545;http://127.0.0.1:8546", "is not an http(s) URL"),
    ("PROVENANCE_RPC_URLS", "http://a:8545,ftp://b", "'ftp://b' is not an http(s) URL"),
    ("PROVENANCE_PEERS", "node-b.example:8000", "is not an http(s) URL"),
    ("PROVENANCE_RPC_URL", "localhost:8545", "is not an http(s) URL"),
    ("PROVENANCE_CONFIRMATION_MODE", "latest", "must be depth, safe or finalized"),
    ("PROVENANCE_REQUIRE_ACCEPTANCE", "maybe", "must be true or false"),
    ("PROVENANCE_MAX_FEE_GWEI", "lots", "must be a number"),
    ("PROVENANCE_BATCH_MAX_AGE", "-5", "must not be negative"),
]


@pytest.mark.parametrize(("variable", "value", "message"), BAD_VALUES)
def test_a_bad_value_is_refused_naming_its_variable(
    no_provenance_env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    no_provenance_env.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        Settings()
    text = str(refused.value)
    assert text.startswith(f"{variable}: ") or variable in text
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [case for case in BAD_VALUES if case[0] in ("PROVENANCE_CONFIRMATIONS", "PROVENANCE_MANDATORY_CHECKS")]
    + [
        ("PROVENANCE_RPC_URLS", "http://a:8545,ftp://b", "is not an http(s) URL"),
        ("PROVENANCE_CONFIRMATION_MODE", "latest", "must be depth, safe or finalized"),
    ],
)
def test_serve_with_a_bad_value_exits_1_with_one_line_and_never_listens(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    home = tmp_path / "home"
    env = {**_clean_environment(), "PROVENANCE_HOME": str(home), variable: value}
    done = subprocess.run(
        [*PROVENANCE, "serve", "--port", "1"],  # port 1: listening there would fail loudly, not hang
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {variable}: ") and message in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not home.exists()  # nothing created, nothing opened


def test_up_with_a_misspelt_mandatory_check_starts_no_chain_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**_clean_environment(), "PROVENANCE_HOME": str(home), "PROVENANCE_MANDATORY_CHECKS": "integrity,custdy"}
    done = subprocess.run(
        [*PROVENANCE, "up", "--exit-after-deploy", "--port", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"error: PROVENANCE_MANDATORY_CHECKS: unknown checks ['custdy']; known: {', '.join(CHECKS)}"
    )
    assert done.stdout == "" and not home.exists()


@pytest.mark.parametrize("entry", ["api.cli", "ledger.cli"])  # the full command; the core's alone
def test_a_core_command_is_refused_the_same_way_before_it_runs(tmp_path: Path, entry: str) -> None:
    env = {**_clean_environment(), "PROVENANCE_HOME": str(tmp_path), "PROVENANCE_CONFIRMATIONS": "-1"}
    done = subprocess.run(
        [sys.executable, "-m", entry, "verify", "0x" + "11" * 32],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: PROVENANCE_CONFIRMATIONS: must be at least 1, got '-1'"


def test_two_bad_values_are_both_named_on_one_line(no_provenance_env: pytest.MonkeyPatch) -> None:
    no_provenance_env.setenv("PROVENANCE_CONFIRMATIONS", "-1")
    no_provenance_env.setenv("PROVENANCE_CONFIRMATION_MODE", "latest")
    with pytest.raises(SettingsError) as refused:
        Settings()
    text = str(refused.value)
    assert "PROVENANCE_CONFIRMATIONS: " in text and "PROVENANCE_CONFIRMATION_MODE: " in text and "\n" not in text


def test_a_tip_above_the_fee_ceiling_names_both_variables(no_provenance_env: pytest.MonkeyPatch) -> None:
    no_provenance_env.setenv("PROVENANCE_MAX_FEE_GWEI", "10")
    no_provenance_env.setenv("PROVENANCE_PRIORITY_FEE_GWEI", "11")
    with pytest.raises(SettingsError, match=r"PROVENANCE_PRIORITY_FEE_GWEI \(11.0\) must not exceed PROVENANCE_MAX"):
        Settings()


def test_a_variant_made_in_code_is_validated_again(no_provenance_env: pytest.MonkeyPatch) -> None:
    settings = Settings(confirmations=3)
    assert settings.replace(rpc_url="http://127.0.0.1:9").confirmations == 3
    with pytest.raises(SettingsError, match="PROVENANCE_CONFIRMATIONS: must be at least 1, got 0"):
        settings.replace(confirmations=0)
    with pytest.raises(SettingsError, match="confirmatoins"):
        Settings(confirmatoins=3)  # a misspelt keyword in code is not silently ignored


# ------------------------------------------------------- every variable is read


# One non-default value per documented variable, and what its field must then hold.
SAMPLES: dict[str, tuple[str, object]] = {
    "PROVENANCE_HOME": ("/srv/provenance", Path("/srv/provenance")),
    "PROVENANCE_RPC_URL": ("http://10.0.0.5:8545", "http://10.0.0.5:8545"),
    "PROVENANCE_ANVIL_PORT": ("9545", 9545),
    "PROVENANCE_MANIFEST": ("/etc/provenance/deployment.json", Path("/etc/provenance/deployment.json")),
    "PROVENANCE_DATABASE_URL": ("postgresql+psycopg://u@db/ledger", "postgresql+psycopg://u@db/ledger"),
    "PROVENANCE_DATA_KEY_FILE": ("/etc/provenance/data.key", Path("/etc/provenance/data.key")),
    "PROVENANCE_CONFIRMATIONS": ("12", 12),
    "PROVENANCE_CONFIRMATION_MODE": ("finalized", "finalized"),
    "PROVENANCE_RPC_URLS": ("http://a:8545, https://b:8545", ("http://a:8545", "https://b:8545")),
    "PROVENANCE_MAX_FEE_GWEI": ("80.5", 80.5),
    "PROVENANCE_PRIORITY_FEE_GWEI": ("2", 2.0),
    "PROVENANCE_FEE_BUMP_PERCENT": ("25", 25),
    "PROVENANCE_TX_STUCK_SECONDS": ("45", 45.0),
    "PROVENANCE_BATCH_MAX_SIZE": ("100", 100),
    "PROVENANCE_BATCH_MAX_AGE": ("0.5", 0.5),
    "PROVENANCE_ANCHOR_KEYSTORE": ("/keys/anchor.json", Path("/keys/anchor.json")),
    "PROVENANCE_KEY_PASSWORD": ("hunter2", "hunter2"),
    "PROVENANCE_ANVIL_BIN": ("/usr/local/bin/anvil", Path("/usr/local/bin/anvil")),
    "PROVENANCE_API_PORT": ("8080", 8080),
    "PROVENANCE_REQUIRE_ACCEPTANCE": ("yes", True),
    "PROVENANCE_MANDATORY_CHECKS": ("integrity, custody", ("integrity", "custody")),
    "PROVENANCE_COMPLETENESS_INTERVAL": ("0", 0.0),
    "PROVENANCE_PEERS": ("https://node-b:8000", ("https://node-b:8000",)),
    "PROVENANCE_MAX_BODY_BYTES": ("2048", 2048),
    "PROVENANCE_MAX_BATCH": ("50", 50),
    "PROVENANCE_KEEPALIVE_REQUESTS": ("50", 50),
    "PROVENANCE_RATE_LIMIT": ("100/minute", "100/minute"),
    "PROVENANCE_AUTH_FAILURE_LIMIT": ("5/minute", "5/minute"),
    "PROVENANCE_REDIS_URL": ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"),
    "PROVENANCE_RATE_LIMIT_PREFIX": ("node-b", "node-b"),
    "PROVENANCE_API_KEY": ("pl_secret", "pl_secret"),
    "PROVENANCE_CUSTOMS_KEYSTORE": ("/keys/customs.json", Path("/keys/customs.json")),
    "PROVENANCE_PUBLIC_RPC_URL": ("https://rpc.example", "https://rpc.example"),
}


def _readme_variables() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(PROVENANCE_[A-Z_]+)` \|", section, flags=re.MULTILINE)


def test_the_readme_documents_exactly_the_variables_the_settings_read() -> None:
    documented = _readme_variables()
    read = [variable_of(name) for name in Settings.model_fields]
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(read)
    assert sorted(SAMPLES) == sorted(read)


@pytest.mark.parametrize("variable", sorted(SAMPLES))
def test_each_documented_variable_reaches_its_field(no_provenance_env: pytest.MonkeyPatch, variable: str) -> None:
    raw, expected = SAMPLES[variable]
    fields = [name for name in Settings.model_fields if variable_of(name) == variable]
    assert len(fields) == 1
    assert getattr(Settings(), fields[0]) != expected  # the sample is not the default
    no_provenance_env.setenv(variable, raw)
    assert getattr(Settings(), fields[0]) == expected


def test_an_empty_variable_means_its_default(no_provenance_env: pytest.MonkeyPatch) -> None:
    for variable in ("PROVENANCE_CONFIRMATIONS", "PROVENANCE_MANDATORY_CHECKS", "PROVENANCE_RPC_URL"):
        no_provenance_env.setenv(variable, "")
    settings = Settings()
    assert settings.confirmations == 2 and settings.mandatory_checks == CHECKS and settings.rpc_url is None


def test_secrets_are_not_printed(no_provenance_env: pytest.MonkeyPatch) -> None:
    no_provenance_env.setenv("PROVENANCE_KEY_PASSWORD", "hunter2-keystore")
    no_provenance_env.setenv("PROVENANCE_API_KEY", "pl_topsecret")
    shown = repr(Settings()) + str(Settings())
    assert "hunter2-keystore" not in shown and "pl_topsecret" not in shown


# --------------------------------------------------- the only reader of the environment


def _environment_uses(path: Path) -> list[str]:
    """Lines of `path` that touch the process environment (os.environ, getenv, putenv)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "putenv", "unsetenv"):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            names = {alias.name for alias in node.names}
            if names & {"environ", "environb", "getenv", "putenv", "unsetenv"}:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_nothing_in_the_core_or_the_service_reads_or_changes_the_environment() -> None:
    """ledger/config.py reads it through pydantic-settings; nothing else may, and the
    command line never passes configuration by setting variables for itself."""
    uses = [
        use
        for package in ("ledger", "api")
        for path in (REPO / package).rglob("*.py")
        for use in _environment_uses(path)
    ]
    assert uses == []
