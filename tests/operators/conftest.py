"""Fixtures shared by the operator tests that run DAGs from ``tests/dags`` through ``airflow dags test``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow_runner import AirflowHome

DAGS = Path(__file__).resolve().parent.parent / "dags"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    """A migrated Airflow home over ``tests/dags``, one per test module (a module may override it)."""
    return AirflowHome(tmp_path_factory.mktemp("airflow-home"), DAGS)
