"""Shared fixtures: every test gets its own token cache folder and starts with none of the provider's process state."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# A throw-away AIRFLOW_HOME before anything imports Airflow, so tests never touch ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ringout-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# In-process tests run triggers with no scheduler to race (see _wait.TRIGGER_FIRE_DELAY): no hold. Airflow run in
# a subprocess (dags test, real services) gets its own environment, so the default hold.
os.environ.setdefault("AIRFLOW__RINGCENTRAL__TRIGGER_FIRE_DELAY", "0")


@pytest.fixture(autouse=True)
def isolated_token_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """
    A private token cache per test, and every process-wide cache emptied before and after it (tokens, pacer state,
    Redis clients, alert claims, warnings said once), so no test rides on another's state.
    """
    from airflow_provider_ringout.state import reset_process_state

    cache = tmp_path / "token-cache"
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR", str(cache))
    reset_process_state()
    yield cache
    reset_process_state()
