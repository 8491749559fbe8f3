"""
End-to-end tests of the example DAGs: each runs through ``airflow dags test`` in a subprocess, against a
RingCentral emulator started in this process on loopback.

Why this way: it is exactly how a user tries an example, so it covers what unit tests cannot (DAG parsing,
templating of params, XCom hand-over between tasks, the trigger run in line for deferrable tasks, the CLI's
connection test). Each test gets its own AIRFLOW_HOME holding a copy of a database migrated once per session,
so every test sees exactly one DAG run; the subprocess env is built from scratch (nothing inherited), so the
results do not depend on the developer's shell. After the run the tests read task states and XComs straight
from that sqlite database, and what was sent to "RingCentral" from the emulator's request record. Every run is
scanned for secrets; one stores the connection in the metadata database instead, and its scan also covers what
a real API server answers about connections (Airflow's default settings: no ``sensitive_var_conn_names``).

Run: ``pytest tests/e2e/test_example_dags.py -q -p no:cacheprovider -x`` (about two minutes on an idle machine).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout import JWT_FIELD
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_3_PLUS
from tests.airflow_runner import airflow_env, dags_test_needs_reserialize, decode_xcom
from tests.e2e.standalone import AirflowServices

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "example_dags"
AIRFLOW = Path(sys.executable).with_name("airflow")
RUN_TIMEOUT = 180  # seconds; a hung `airflow dags test` fails its test instead of the whole session

FROM_NUMBER = "+14155550100"  # the connection's default From number
DEFAULT_TO_NUMBER = "+14155550199"  # the examples' default "to_number" param
POOL = "ringcentral_ringout"
POOL_SLOTS = 2
BAD_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"  # well-formed, but not the emulator's credential
EXAMPLE_DAG_IDS = (
    "example_ringout_call",
    "example_ringout_sensor",
    "example_ringout_mapped",
    "example_ringout_taskflow",
    "example_ringout_call_results",
)


# --- running Airflow ---------------------------------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    """The whole environment of an Airflow subprocess, for the example DAGs."""
    return airflow_env(home, DAGS_FOLDER)


def airflow(home: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this venv with ``home`` as AIRFLOW_HOME; stdout and stderr captured together."""
    return subprocess.run(
        [str(AIRFLOW), *args],
        env={**base_env(home), **(env or {})},
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def tail(text: str, lines: int = 60) -> str:
    """The end of a long CLI output, for assertion messages."""
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def airflow_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIRFLOW_HOME migrated once per session, with the pool the mapped example needs, created as documented."""
    home = tmp_path_factory.mktemp("airflow-home-template")
    migrate = airflow(home, "db", "migrate")
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{tail(migrate.stdout)}"
    pool = airflow(
        home, "pools", "set", POOL, str(POOL_SLOTS), "RingCentral RingOut calls (about 10 a minute per user)"
    )
    assert pool.returncode == 0, f"airflow pools set failed:\n{tail(pool.stdout)}"
    return home


@pytest.fixture
def airflow_home(airflow_home_template: Path, tmp_path: Path) -> Path:
    """A private AIRFLOW_HOME: a copy of the template's database only (its airflow.cfg names the template's paths)."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy2(airflow_home_template / "airflow.db", home / "airflow.db")
    return home


@pytest.fixture
def emulator() -> Iterator[RingCentralEmulator]:
    """An emulator on a free loopback port; calls are answered 1 s after they are placed and stay up a minute."""
    rc = RingCentralEmulator(
        host="127.0.0.1",
        default_script=CallScript(outcome=Outcome.ANSWERED, after=1.0, talk=60.0, linger=5.0),
    ).start()
    try:
        yield rc
    finally:
        rc.stop()


def connection_env(rc: RingCentralEmulator, **extra: str) -> dict[str, str]:
    """``ringcentral_default`` pointing at the emulator, with the default From number (and ``extra`` overrides)."""
    return {"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": rc.connection_json(extra={"from_number": FROM_NUMBER, **extra})}


# --- one DAG run, read back from the metadata database -----------------------------------------------


@dataclass
class DagTestRun:
    """What ``airflow dags test`` did: exit code, output, and the run's task states and XComs from the database."""

    dag_id: str
    returncode: int
    output: str
    seconds: float
    run_state: str | None = None
    states: dict[tuple[str, int], str | None] = field(default_factory=dict)
    pools: dict[tuple[str, int], str] = field(default_factory=dict)
    map_labels: dict[tuple[str, int], str | None] = field(default_factory=dict)  # rendered_map_index
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)

    def state(self, task_id: str, map_index: int = -1) -> str | None:
        """The final state of one task instance (KeyError if it does not exist)."""
        return self.states[(task_id, map_index)]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """One XCom value (KeyError if it was never pushed)."""
        return self.xcoms[(task_id, map_index, key)]

    def has_xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> bool:
        """Whether the XCom was pushed."""
        return (task_id, map_index, key) in self.xcoms

    def __str__(self) -> str:
        """Enough to understand a failed assertion without rerunning."""
        states = ", ".join(f"{t}[{i}]={s}" if i >= 0 else f"{t}={s}" for (t, i), s in sorted(self.states.items()))
        return f"{self.dag_id}: exit {self.returncode}, run {self.run_state}; {states}\n{tail(self.output)}"


def read_run(home: Path, dag_id: str, result: DagTestRun) -> DagTestRun:
    """Fill in the run's state, task states, pools and XComs (values are stored as JSON text in Airflow 3)."""
    db = sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True)
    try:
        runs = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
        if not runs:
            return result
        assert len(runs) == 1, f"expected one run of {dag_id}, found {runs}"
        run_id, result.run_state = runs[0]
        for task_id, map_index, state, pool, label in db.execute(
            "SELECT task_id, map_index, state, pool, rendered_map_index FROM task_instance"
            " WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ):
            result.states[(task_id, map_index)] = state
            result.pools[(task_id, map_index)] = pool
            result.map_labels[(task_id, map_index)] = label
        for task_id, map_index, key, value in db.execute(
            "SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ):
            result.xcoms[(task_id, map_index, key)] = decode_xcom(value)
    finally:
        db.close()
    return result


def dags_test(
    home: Path,
    rc: RingCentralEmulator,
    dag_id: str,
    *,
    conf: dict[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    connection_in_db: bool = False,
) -> DagTestRun:
    """
    ``airflow dags test dag_id`` against the emulator, then the run as the database recorded it.

    ``connection_in_db``: use the ``ringcentral_default`` saved in the metadata database (as the UI saves it)
    instead of the environment variable; the secret scan then also covers the API server's connection answers.
    """
    args = ["dags", "test", dag_id]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    if dags_test_needs_reserialize():
        airflow(home, "dags", "reserialize")
    started = time.monotonic()
    proc = airflow(home, *args, env={**({} if connection_in_db else connection_env(rc)), **(env or {})})
    result = DagTestRun(dag_id, proc.returncode, proc.stdout, time.monotonic() - started)
    read_run(home, dag_id, result)
    assert_no_secret_leaked(home, rc, result, api_server=connection_in_db)
    return result


def without_airflow_ipc_debug(output: str) -> str:
    """
    The output less Airflow 3.0's own DEBUG records of its task-runner messages (``Sending request msg=...``,
    ``Received message from task runner``), which print the values passed to the masker or to XCom verbatim:
    they are Airflow's plumbing, not something the provider logged (Airflow 3.3 no longer prints them).
    """
    ipc = re.compile(r"\[debug\s*\].*(Sending request|Received message from task runner)")
    return "\n".join(line for line in output.splitlines() if not ipc.search(line))


def api_server_answers(home: Path) -> dict[str, str]:
    """
    What a user who may read connections gets from a real API server on ``home``'s database, with Airflow's
    default configuration (no ``sensitive_var_conn_names``): one connection, the list, and the server's log.
    """
    with AirflowServices(home, DAGS_FOLDER) as services:
        services.start("api-server")
        services.wait_healthy(names=(), timeout=120)
        one = services.api("GET", "/connections/ringcentral_default")
        listed = services.api("GET", "/connections")
    assert one["conn_type"] == "ringcentral" and listed["total_entries"] >= 1, (one, listed)
    log = "\n".join(s.log_path.read_text(errors="replace") for s in services.ended)
    return {"API server connection answers": json.dumps([one, listed]), "API server log": log}


def assert_no_secret_leaked(
    home: Path, rc: RingCentralEmulator, result: DagTestRun, *, api_server: bool = False
) -> None:
    """
    The client secret, the JWT and every token the emulator issued appear nowhere a user can see: the run's
    output and exception texts, task log files, XCom values, and rendered template fields; with ``api_server``,
    also what the API server answers about the connection (saved in the metadata database) and its log.
    """
    from airflow_provider_ringout.testing import TEST_CLIENT_SECRET, TEST_JWT

    secrets = {"client secret": TEST_CLIENT_SECRET, "JWT": TEST_JWT}
    secrets.update({f"token #{i}": token for i, token in enumerate(rc.issued_tokens)})
    db = sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True)
    try:
        rendered = [row[0] for row in db.execute("SELECT rendered_fields FROM rendered_task_instance_fields")]
    finally:
        db.close()
    places = {
        "output": without_airflow_ipc_debug(result.output),
        "xcom": json.dumps(list(result.xcoms.values()), default=str),
        "rendered fields": json.dumps(rendered, default=str),
        "log files": "\n".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file())
        if (home / "logs").exists()
        else "",
        **(api_server_answers(home) if api_server else {}),
    }
    assert rc.issued_tokens, "no token issued: nothing would have been checked"
    assert rendered, "no rendered template fields recorded: nothing would have been checked"
    leaks = [
        f"{name} in {place}" for place, text in places.items() for name, secret in secrets.items() if secret in text
    ]
    assert leaks == [], leaks


# --- what "RingCentral" saw --------------------------------------------------------------------------


def ringout_requests(rc: RingCentralEmulator) -> list[tuple[str, str]]:
    """RingOut API requests in order, as (method, ringout id or "" for a create); tokens left out."""
    calls = []
    for request in rc.requests:
        if request.kind.startswith("ring-out"):
            ringout_id = "" if request.kind == "ring-out-create" else request.path.rstrip("/").rsplit("/", 1)[-1]
            calls.append((request.method, ringout_id))
    return calls


def only_session(rc: RingCentralEmulator) -> Any:
    """The one RingOut the emulator saw created."""
    sessions = list(rc.sessions.values())
    assert len(sessions) == 1, f"expected exactly one call placed, got {sessions}"
    return sessions[0]


# --- the examples parse ------------------------------------------------------------------------------


def test_example_dags_parse_without_errors(airflow_home: Path) -> None:
    """Every example file imports and defines its DAG, as the DAG processor would see it."""
    report = airflow(airflow_home, "dags", "report", "-o", "json")
    assert report.returncode == 0, tail(report.stdout)
    listed = json.loads(next(line for line in report.stdout.splitlines() if line.startswith(("[{", "[]"))))
    found = {dag_id for entry in listed for dag_id in entry["dags"]}
    assert set(EXAMPLE_DAG_IDS) <= found, f"missing: {set(EXAMPLE_DAG_IDS) - found}\n{tail(report.stdout)}"

    errors = airflow(airflow_home, "dags", "list-import-errors", "--local", "-o", "json")
    assert errors.returncode == 0, tail(errors.stdout)
    problems = json.loads(next(line for line in errors.stdout.splitlines() if line.startswith(("[{", "[]"))))
    ours = [p for p in problems if any(f"{dag_id}.py" in json.dumps(p) for dag_id in EXAMPLE_DAG_IDS)]
    assert ours == [], ours


# --- example 1: place and wait in one task -----------------------------------------------------------


def test_call_connects(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """The call connects: the task succeeds and returns the id of the one call placed; nothing is cancelled."""
    run = dags_test(airflow_home, emulator, "example_ringout_call")

    assert run.returncode == 0, run
    assert run.run_state == "success", run
    assert run.state("call") == "success", run
    call = only_session(emulator)
    assert (call.from_number, call.to_number) == (FROM_NUMBER, DEFAULT_TO_NUMBER)
    assert run.xcom("call") == call.id
    assert run.xcom("call", key="ringout_id") == call.id
    assert emulator.count("POST", "ring-out-create") == 1
    assert emulator.count("DELETE", "ring-out-delete") == 0
    assert not call.cancelled


def test_connection_saved_in_the_database_stays_hidden(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """
    ``ringcentral_default`` saved in the metadata database, as the UI saves it, with Airflow's default settings:
    example 1 connects, and neither its run nor the API server's answers about the connection show a secret.
    """
    saved = airflow(
        airflow_home,
        "connections",
        "add",
        "ringcentral_default",
        "--conn-json",
        emulator.connection_json(extra={"from_number": FROM_NUMBER}),
    )
    assert saved.returncode == 0, tail(saved.stdout)

    run = dags_test(airflow_home, emulator, "example_ringout_call", connection_in_db=True)

    assert run.returncode == 0, run
    assert run.state("call") == "success", run
    assert run.xcom("call") == only_session(emulator).id


def test_legacy_jwt_key_still_calls_and_warns_once(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """A connection saved by an earlier release (JWT under ``jwt``) still places the call; one warning says how to move it."""
    conn = json.loads(emulator.connection_json(extra={"from_number": FROM_NUMBER}))
    conn["extra"]["jwt"] = conn["extra"].pop(JWT_FIELD)

    run = dags_test(
        airflow_home, emulator, "example_ringout_call", env={"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": json.dumps(conn)}
    )

    assert run.returncode == 0, run
    assert run.state("call") == "success", run
    assert emulator.count("POST", "ring-out-create") == 1
    warnings = re.findall(r"keeps the JWT under the extra key 'jwt'.*?Move it to the key 'jwt_token'", run.output)
    assert len(warnings) == 1, tail(run.output)


def test_call_times_out_and_is_cancelled(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """Nobody answers: after RINGOUT_EXAMPLE_WAIT_TIMEOUT the call is cancelled (one DELETE) and the task fails."""
    to_number = "+14155550123"  # given as a run param: proves the params reach the operator
    emulator.script(to_number, Outcome.NEVER_ANSWERS)

    run = dags_test(
        airflow_home,
        emulator,
        "example_ringout_call",
        conf={"to_number": to_number},
        env={"RINGOUT_EXAMPLE_WAIT_TIMEOUT": "2"},
    )

    assert run.returncode != 0, run
    assert run.run_state == "failed", run
    assert run.state("call") == "failed", run
    call = only_session(emulator)
    assert call.to_number == to_number
    assert call.cancelled, "the emulator never saw the call stopped"
    assert run.xcom("call", key="ringout_id") == call.id
    assert not run.has_xcom("call"), "a call that did not connect must not return an id"
    requests = ringout_requests(emulator)
    assert requests.count(("POST", "")) == 1
    assert [r for r in requests if r[0] == "DELETE"] == [("DELETE", call.id)]
    assert "did not connect within 2 s; it was cancelled and stopped" in run.output


# --- example 2: place, then a deferrable sensor ------------------------------------------------------


def test_sensor_sees_the_call_connect(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """The sensor defers, its trigger sees the call connect, and the last task gets the id; nothing is cancelled."""
    # Answered well after the sensor's first poke, however late a busy host starts it, so the sensor must defer.
    emulator.script(DEFAULT_TO_NUMBER, CallScript(outcome=Outcome.ANSWERED, after=8.0, talk=60.0, linger=5.0))
    run = dags_test(
        airflow_home,
        emulator,
        "example_ringout_sensor",
        env={"RINGOUT_EXAMPLE_SENSOR_TIMEOUT": "60", "RINGOUT_EXAMPLE_POKE_INTERVAL": "0.5"},
    )

    assert run.returncode == 0, run
    assert run.run_state == "success", run
    assert {t: run.state(t) for t in ("place", "wait_for_connection", "report_connected")} == {
        "place": "success",
        "wait_for_connection": "success",
        "report_connected": "success",
    }, run
    assert "[DAG TEST] running trigger in line" in run.output, "the sensor did not defer"
    call = only_session(emulator)
    assert run.xcom("place") == call.id
    assert run.xcom("report_connected") == call.id
    assert emulator.count("POST", "ring-out-create") == 1
    assert emulator.count("DELETE", "ring-out-delete") == 0
    assert not call.cancelled


def test_sensor_timeout_cancels_the_call(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """Nobody answers: at the sensor's timeout the call is cancelled (one DELETE) and the sensor fails."""
    emulator.script(DEFAULT_TO_NUMBER, Outcome.NEVER_ANSWERS)

    run = dags_test(
        airflow_home,
        emulator,
        "example_ringout_sensor",
        env={"RINGOUT_EXAMPLE_SENSOR_TIMEOUT": "2", "RINGOUT_EXAMPLE_POKE_INTERVAL": "0.5"},
    )

    assert run.returncode != 0, run
    assert run.run_state == "failed", run
    assert run.state("place") == "success", run
    assert run.state("wait_for_connection") == "failed", run
    assert run.state("report_connected") == "upstream_failed", run
    assert "[DAG TEST] running trigger in line" in run.output, "the sensor did not defer"
    assert "AirflowSensorTimeout" in run.output
    call = only_session(emulator)
    assert run.xcom("place") == call.id
    assert not run.has_xcom("report_connected")
    assert call.cancelled, "the emulator never saw the call stopped"
    requests = ringout_requests(emulator)
    assert requests.count(("POST", "")) == 1
    assert [r for r in requests if r[0] == "DELETE"] == [("DELETE", call.id)]


# --- example 3: mapped calls in a pool, and a summary ------------------------------------------------


def test_mapped_calls_and_summary(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """One call per number (from the run's params), all in the pool; the summary tells who connected, honestly."""
    numbers = ["+14155550111", "+14155550112", "+14155550113"]
    emulator.script(numbers[1], Outcome.BUSY)

    run = dags_test(airflow_home, emulator, "example_ringout_mapped", conf={"to_numbers": numbers})

    # The summary is the only leaf and ran, so the run succeeds although one call failed.
    assert run.returncode == 0, run
    assert run.run_state == "success", run
    assert [run.state("call", i) for i in range(3)] == ["success", "failed", "success"], run
    assert run.state("summarize") == "success", run
    assert {run.pools[("call", i)] for i in range(3)} == {POOL}
    if AIRFLOW_V_3_3_PLUS:  # the grid names each mapped call by its masked number (3.0's partial() shows 0/1/2)
        assert [run.map_labels[("call", i)] for i in range(3)] == ["+1******0111", "+1******0112", "+1******0113"]

    placed = {s.to_number: s.id for s in emulator.sessions.values()}
    assert sorted(placed) == sorted(numbers), "expected exactly one call per number"
    assert emulator.count("POST", "ring-out-create") == 3
    assert emulator.count("DELETE", "ring-out-delete") == 0
    assert [run.xcom("call", key="ringout_id", map_index=i) for i in range(3)] == [placed[n] for n in numbers]
    assert not run.has_xcom("call", map_index=1), "a failed call must not return an id"

    summary = run.xcom("summarize")
    assert summary["connected"] == [numbers[0], numbers[2]]
    assert summary["not_connected"] == [numbers[1]]
    assert summary["calls"] == [
        {"to_number": n, "map_index": i, "state": s, "ringout_id": placed[n], "connected": s == "success"}
        for i, (n, s) in enumerate(zip(numbers, ["success", "failed", "success"], strict=True))
    ]
    # Numbers are personal data: the provider logs them masked, and the example does not log its return values.
    for number in numbers:
        assert number not in without_airflow_ipc_debug(run.output), f"{number} appears unmasked in the task logs"

    db = sqlite3.connect(f"file:{airflow_home / 'airflow.db'}?mode=ro", uri=True)
    try:
        slots = db.execute("SELECT slots FROM slot_pool WHERE pool = ?", (POOL,)).fetchone()
    finally:
        db.close()
    assert slots == (POOL_SLOTS,), "the pool the example documents was not created"


# --- example 4: TaskFlow, .output and RingOutCancelOperator -------------------------------------------


def test_example_call_results(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    numbers = ["+14155550121", "+14155550122"]
    emulator.script(numbers[0], CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=0.5))
    emulator.script(numbers[1], CallScript(outcome=Outcome.BUSY, after=0.3, linger=30))

    run = dags_test(
        airflow_home,
        emulator,
        "example_ringout_call_results",
        conf={"to_numbers": numbers},
        env={
            "RINGOUT_EXAMPLE_RESULT_POLL_INTERVAL": "0.3",
            "RINGOUT_EXAMPLE_RESULT_TIMEOUT": "60",
            "AIRFLOW__RINGCENTRAL__CALL_LOG_INTERVAL": "1",
        },
    )

    assert [run.state("call", i) for i in range(2)] == ["success", "failed"], run
    assert run.state("report") == "success", run
    report = run.xcom("report")
    assert [entry["call_result"]["result"] for entry in report] == ["Call connected", "Busy"], report
    assert report[0]["call_result"]["answered_by"] == "person"
    assert run.xcom("call", map_index=0) == run.xcom("call", "ringout_id", map_index=0)  # the id, as before


def test_taskflow_cancels_an_unanswered_call(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """The phone rings unanswered: the cancel task stops it (True) and the report says so."""
    emulator.script(DEFAULT_TO_NUMBER, Outcome.NEVER_ANSWERS)

    run = dags_test(airflow_home, emulator, "example_ringout_taskflow", env={"RINGOUT_EXAMPLE_RING_SECONDS": "1"})

    assert run.returncode == 0, run
    assert run.run_state == "success", run
    assert {run.state(t) for t in ("place", "ring_briefly", "cancel", "report")} == {"success"}, run
    call = only_session(emulator)
    assert run.xcom("place") == call.id
    assert run.xcom("ring_briefly")["state"] == "pending"
    assert run.xcom("cancel") is True
    assert run.xcom("report") == {"ringout_id": call.id, "state_before_cancel": "pending", "stopped": True}
    assert call.cancelled
    requests = ringout_requests(emulator)
    assert requests.count(("POST", "")) == 1
    assert [r for r in requests if r[0] == "DELETE"] == [("DELETE", call.id)]


def test_taskflow_cannot_cancel_a_connected_call(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """The call connects while ringing: the cancel is sent but cannot stop it, returns False, and the report says so."""
    run = dags_test(airflow_home, emulator, "example_ringout_taskflow", env={"RINGOUT_EXAMPLE_RING_SECONDS": "10"})

    assert run.returncode == 0, run
    assert {run.state(t) for t in ("place", "ring_briefly", "cancel", "report")} == {"success"}, run
    call = only_session(emulator)
    assert run.xcom("ring_briefly")["state"] == "connected"
    assert run.xcom("cancel") is False
    assert run.xcom("report") == {"ringout_id": call.id, "state_before_cancel": "connected", "stopped": False}
    assert not call.cancelled
    assert call.status is not None, "the connected call was cut off"
    assert call.status["callStatus"] == "Success", "the connected call was cut off"
    assert emulator.count("POST", "ring-out-create") == 1
    assert emulator.count("DELETE", "ring-out-delete") == 1


# --- airflow connections test --------------------------------------------------------------------------


def connections_test(home: Path, rc: RingCentralEmulator, **extra: str) -> subprocess.CompletedProcess[str]:
    """``airflow connections test ringcentral_default`` with connection testing enabled."""
    env = {**connection_env(rc, **extra), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    return airflow(home, "connections", "test", "ringcentral_default", env=env)


def ringout_request_count(rc: RingCentralEmulator) -> int:
    """RingOut API requests of any kind (create, status, cancel)."""
    return rc.count(kind="ring-out") + rc.count(kind="ring-out-status")


def test_connection_test_succeeds_without_placing_a_call(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """Good credentials: the CLI reports success after one login, and no call is placed."""
    proc = connections_test(airflow_home, emulator)

    assert proc.returncode == 0, tail(proc.stdout)
    assert "Connection success!" in proc.stdout, tail(proc.stdout)
    assert emulator.count("POST", "token", status=200) == 1
    assert ringout_request_count(emulator) == 0


def test_connection_test_explains_a_bad_jwt(airflow_home: Path, emulator: RingCentralEmulator) -> None:
    """A JWT RingCentral rejects: the CLI fails with a message that names the JWT and the fix; no call is placed."""
    proc = connections_test(airflow_home, emulator, jwt_token=BAD_JWT)

    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_3_PLUS:  # older CLIs print "Connection failed!" and still exit 0
        assert proc.returncode != 0, tail(proc.stdout)
    assert "Connection failed!" in proc.stdout, tail(proc.stdout)
    assert "RingCentral rejected the JWT" in proc.stdout, tail(proc.stdout)
    assert "Create a new JWT credential" in proc.stdout, tail(proc.stdout)
    assert emulator.count("POST", "token", status=400) == 1
    assert ringout_request_count(emulator) == 0
