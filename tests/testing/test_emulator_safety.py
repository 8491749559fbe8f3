"""The emulator's unauthenticated control plane stays local; its fixtures never let a test reach RingCentral."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from airflow_provider_ringout.testing import RingCentralEmulator

TIMEOUT = 5


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "rebind.attacker.test:8765", "10.0.0.5"])
def test_control_plane_refuses_a_foreign_host_header(ringcentral_emulator: RingCentralEmulator, host: str) -> None:
    url = f"{ringcentral_emulator.url}/_emulator"
    refused = requests.post(f"{url}/reset", headers={"Host": host}, timeout=TIMEOUT)
    assert refused.status_code == 403
    assert requests.get(f"{url}/requests", headers={"Host": host}, timeout=TIMEOUT).status_code == 403


@pytest.mark.parametrize("host", [None, "localhost", "127.0.0.1", "localhost:1", "[::1]:8765"])
def test_control_plane_answers_loopback_names(ringcentral_emulator: RingCentralEmulator, host: str | None) -> None:
    headers = {"Host": host} if host else {}
    answer = requests.get(f"{ringcentral_emulator.url}/_emulator/health", headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 200


def test_empty_host_binds_loopback_only() -> None:
    with RingCentralEmulator(host="") as emulator:
        assert emulator.host == "127.0.0.1"
        assert emulator._server is not None
        assert emulator._server.server_address[0] == "127.0.0.1"
        assert requests.get(f"{emulator.url}/_emulator/health", timeout=TIMEOUT).status_code == 200


_INNER_TEST = textwrap.dedent(
    """
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    def test_talks_to_the_emulator(ringcentral_conn_env):
        ok, message = RingCentralHook().test_connection()
        assert ok, message
        assert ringcentral_conn_env.count(kind="token") == 1
    """
)


def test_conn_fixture_fails_loudly_when_a_secrets_backend_answers_first(tmp_path: Path) -> None:
    """A configured secrets backend is asked before AIRFLOW_CONN_*: the fixture must notice, not call production."""
    with RingCentralEmulator() as production:  # stands in for the real RingCentral the backend points at
        conn = json.loads(production.connection_json())
        connections = tmp_path / "connections.json"
        connections.write_text(json.dumps({"ringcentral_default": conn}))
        (tmp_path / "test_inner.py").write_text(_INNER_TEST)
        env = {
            **os.environ,
            "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
        }
        env.pop("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", None)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_inner.py")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode != 0, done.stdout[-3000:]
        assert f"resolves to {production.url}, not to the emulator" in done.stdout, done.stdout[-3000:]
        assert "AIRFLOW__SECRETS__BACKEND" not in done.stdout or "LocalFilesystemBackend" in done.stdout
        assert production.requests == []  # nothing reached the "real" server
        assert conn["password"] not in done.stdout
