"""Run DAGs the way users do (``airflow dags test`` in a subprocess) and read back task states and XComs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """The whole environment of an Airflow subprocess: only what it needs, nothing from the caller's shell."""
    return {
        "PATH": os.pathsep.join([str(Path(AIRFLOW).parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(home / "ringcentral-cache"),
        # A checkout tested with another checkout's environment puts itself first on PYTHONPATH: keep it so.
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
    }


def decode_xcom(raw: Any) -> Any:
    """An XCom value as stored in the metadata DB: JSON text (Airflow 3.0 wraps it in one more JSON string)."""
    value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        value = json.loads(value)
    return value


def dags_test_needs_reserialize() -> bool:
    """Before Airflow 3.3 (seen on 3.0) ``airflow dags test`` reads DAGs from the database: serialise them first."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    return not AIRFLOW_V_3_3_PLUS


@dataclass
class DagRunResult:
    """What one ``airflow dags test`` left behind."""

    returncode: int
    output: str
    states: dict[str, str | None] = field(default_factory=dict)  # "task_id" or "task_id[map_index]" -> state
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)  # ("task_id" or "task_id[i]", key) -> value

    def xcom(self, task: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task, key))


class AirflowHome:
    """A throw-away AIRFLOW_HOME with a migrated SQLite database, and helpers to run DAGs in it."""

    def __init__(self, path: Path, dags_folder: Path) -> None:
        self.path = path
        self.dags_folder = dags_folder
        self.env: dict[str, str] = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(path),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(path / "token-cache"),
        }
        self.run_cli("db", "migrate")

    def run_cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def dags_test(
        self, dag_id: str, *, env: dict[str, str] | None = None, conf: dict[str, Any] | None = None
    ) -> DagRunResult:
        args = ["dags", "test", dag_id]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        if dags_test_needs_reserialize():
            self.run_cli("dags", "reserialize", env=env)
        proc = self.run_cli(*args, env=env)
        result = DagRunResult(proc.returncode, proc.stdout + proc.stderr)
        self._read_back(dag_id, result)
        return result

    def _read_back(self, dag_id: str, result: DagRunResult) -> None:
        with sqlite3.connect(self.path / "airflow.db") as db:
            run = db.execute(
                "SELECT id, run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if run is None:
                return
            for task_id, map_index, state in db.execute(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run[1])
            ):
                result.states[task_id if map_index < 0 else f"{task_id}[{map_index}]"] = state
            for task_id, map_index, key, value in db.execute(
                "SELECT task_id, map_index, key, value FROM xcom WHERE dag_run_id = ?", (run[0],)
            ):
                name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
                result.xcoms[(name, key)] = decode_xcom(value)
