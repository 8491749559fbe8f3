"""
End-to-end tests of the deferrable RingOutOperator under real Airflow services.

The api-server, scheduler, dag-processor and triggerer run as separate processes on loopback (see
``tests/e2e/standalone.py``), once for the whole module, with the LocalExecutor over SQLite and the simple
auth manager (all admins). The ``ringcentral_default`` connection comes from ``AIRFLOW_CONN_RINGCENTRAL_DEFAULT``
and points at a RingCentral emulator running in this test process, so the test reads exactly what every
Airflow process sent. DAG runs are triggered and task instances watched through the public REST API, as a
user or the UI would; the DAGs are in ``tests/e2e/dags``, one per scenario, each calling its own number.

Why: ``airflow dags test`` runs a trigger in line, in one process. Only real services show that the task
really waits in the triggerer (``deferred``), that the trigger's event resumes it on a worker, that marking a
deferred task failed runs the trigger's ``on_kill`` (and cancels the call), and that a triggerer restart
resumes the same absolute deadline without cancelling or dialling again, and that a deferred wait stops its
call whoever ends it: the trigger at its deadline (ten sensors timing out at once on a busy machine, an
operator's ``execution_timeout``), or Airflow's own deferral timeout with the triggerer down; a reschedule-mode
sensor whose timeout falls between two pokes stops its call too. The last test checks that no secret
(client secret, JWT, access or refresh token) reached any service log or task log along the way.

Run: ``pytest tests/e2e/test_standalone_deferred.py -q -p no:cacheprovider -x`` (about four minutes).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from airflow_provider_ringout.testing import (
    TEST_CLIENT_SECRET,
    TEST_JWT,
    CallScript,
    Outcome,
    RingCentralEmulator,
)
from tests.e2e.dags.ringout_deferred_services import (
    CRASHES,
    OPERATOR_EXECUTION_TIMEOUT,
    RESCHEDULE_RUN_TO_TIMEOUT,
    RESCHEDULE_TIMEOUT,
    SENSOR_TIMEOUT,
    TRIGGERER_DOWN,
    VANISHED_THEN_CLEARED,
)
from tests.e2e.standalone import AirflowServices, ServiceError, services_on_emulator, tail_file

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_ringout.testing import RecordedRequest

pytestmark = pytest.mark.e2e

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
TERMINAL = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
TASK_ID = "call"

# Must match tests/e2e/dags/ringout_deferred_services.py: dag_id -> (callee number, wait_timeout seconds).
ANSWERED = ("deferred_answered", "+15550100001", 90.0)
TIMEOUT = ("deferred_timeout", "+15550100002", 6.0)
MARK_FAILED = ("deferred_mark_failed", "+15550100003", 240.0)
RESTART = ("deferred_triggerer_restart", "+15550100004", 45.0)
ANSWER_AFTER = 6.0  # seconds from the POST until the answered call connects: long enough to see `deferred`


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    """One emulator for the module; each scenario's number has its own script, so the record can be split."""
    rc = RingCentralEmulator(host="127.0.0.1", default_script=CallScript(outcome=Outcome.NEVER_ANSWERS)).start()
    rc.script(ANSWERED[1], CallScript(outcome=Outcome.ANSWERED, after=ANSWER_AFTER, talk=300, linger=30))
    for _, number, _ in (TIMEOUT, MARK_FAILED, RESTART):
        rc.script(number, CallScript(outcome=Outcome.NEVER_ANSWERS))
    for _, number in CRASHES.values():
        rc.script(number, CallScript(outcome=Outcome.ANSWERED, after=6, talk=300, linger=300))
    # Answered at 0.5 s, gone at 1.5 s: between two reads 3 s apart.
    rc.script(VANISHED_THEN_CLEARED[1], CallScript(outcome=Outcome.ANSWERED, after=0.5, talk=0.5, linger=0.5))
    try:
        yield rc
    finally:
        rc.stop()


@pytest.fixture(scope="module")
def services(emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    """The four services over a fresh AIRFLOW_HOME, healthy, with this module's DAGs parsed and unpaused."""
    home = tmp_path_factory.mktemp("airflow-services")
    racing = [SENSOR_TIMEOUT[0], OPERATOR_EXECUTION_TIMEOUT[0], RESCHEDULE_TIMEOUT[0], TRIGGERER_DOWN[0]]
    racing += [VANISHED_THEN_CLEARED[0], RESCHEDULE_RUN_TO_TIMEOUT[0]]
    dag_ids = [d for d, _, _ in (ANSWERED, TIMEOUT, MARK_FAILED, RESTART)] + list(CRASHES) + racing
    with services_on_emulator(emulator, home, DAGS_FOLDER, dag_ids) as airflow:
        yield airflow


@pytest.fixture(autouse=True)
def show_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """
    Print the service log tails at teardown; pytest shows a test's captured output only when it failed.

    The module's services fixture is looked up lazily, so this costs nothing when it was not set up.
    """
    yield
    if "services" in request.fixturenames:
        airflow: AirflowServices = request.getfixturevalue("services")
        print(airflow.log_tails(60))


# --- helpers -----------------------------------------------------------------------------------------


@dataclass
class RunWatch:
    """One DAG run of a one-task DAG, and every state its task instance was seen in (monotonic times)."""

    airflow: AirflowServices
    dag_id: str
    run_id: str
    history: list[tuple[float, str | None]] = field(default_factory=list)
    task_id: str = TASK_ID

    @property
    def ti_path(self) -> str:
        """REST path of the task instance."""
        return f"/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances/{self.task_id}"

    def state(self) -> str | None:
        """The task instance's state now (recorded in ``history`` when it changed)."""
        ti = self.airflow.api("GET", self.ti_path, expect=(200, 404)) or {}
        state = ti.get("state")
        if not self.history or self.history[-1][1] != state:
            self.history.append((time.monotonic(), state))
        return state

    def wait(self, states: frozenset[str] | set[str], *, timeout: float, interval: float = 0.2) -> str:
        """Poll until the state is one of ``states``; returns it. Also notes the services' children."""

        def probe() -> str | None:
            self.airflow.watch_children()
            state = self.state()
            return state if state in states else None

        return str(
            self.airflow.wait_for(f"{self.dag_id} task in {sorted(states)}", probe, timeout=timeout, interval=interval)
        )

    def seen(self, state: str) -> bool:
        """Whether the task instance was ever seen in ``state``."""
        return any(s == state for _, s in self.history)

    def left(self, state: str) -> float | None:
        """When the task instance was first seen in another state after ``state``."""
        inside = False
        for at, s in self.history:
            if s == state:
                inside = True
            elif inside:
                return at
        return None

    def describe(self) -> str:
        """The state history relative to the first observation, for assertion messages."""
        start = self.history[0][0] if self.history else 0.0
        return ", ".join(f"+{at - start:.1f}s {s}" for at, s in self.history)

    def xcom(self, key: str = "return_value") -> Any:
        """One XCom value of the task, as the REST API returns it."""
        return self.airflow.api("GET", f"{self.ti_path}/xcomEntries/{key}")["value"]

    def log_dir(self) -> Path:
        """The folder of this task instance's logs (task attempts and trigger logs)."""
        return (
            self.airflow.home / "logs" / f"dag_id={self.dag_id}" / f"run_id={self.run_id}" / f"task_id={self.task_id}"
        )

    def trigger_logs(self) -> str:
        """Everything the triggerer wrote for this task (one file per triggerer that ran the trigger)."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir().glob("*.trigger.*.log")))

    def task_log(self) -> str:
        """Everything the worker wrote for this task's attempts."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir().glob("attempt=*.log")))


def trigger(airflow: AirflowServices, dag_id: str) -> RunWatch:
    """Trigger a run through the REST API (``POST /dags/{dag_id}/dagRuns``), as the UI's trigger button does."""
    run_id = f"e2e__{uuid.uuid4().hex[:12]}"
    body = {"dag_run_id": run_id, "logical_date": None}
    # SQLite under load can answer "database is locked" (500); the run id makes a resend safe (409: it exists).
    for _ in range(5):
        airflow.api("POST", f"/dags/{dag_id}/dagRuns", body, expect=(200, 409, 500))
        if (airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}", expect=(200, 404)) or {}).get("dag_run_id"):
            break
        time.sleep(1)
    else:
        raise ServiceError(f"could not create DAG run {run_id} of {dag_id}\n{airflow.log_tails()}")
    watch = RunWatch(airflow, dag_id, run_id)
    watch.state()
    return watch


def ringout_id_for(
    emulator: RingCentralEmulator, airflow: AirflowServices, number: str, *, timeout: float = 120
) -> str:
    """The id of the (first) RingOut placed to ``number``, once one was."""
    return str(
        airflow.wait_for(
            f"a RingOut to {number}",
            lambda: next((s.id for s in emulator.sessions.values() if s.to_number == number), None),
            timeout=timeout,
        )
    )


def posts_to(emulator: RingCentralEmulator, number: str) -> list[RecordedRequest]:
    """Every ring-out POST whose callee is ``number``."""
    return [
        r
        for r in emulator.requests
        if r.kind == "ring-out-create"
        and isinstance(r.json, dict)
        and (r.json.get("to") or {}).get("phoneNumber") == number
    ]


def requests_for(emulator: RingCentralEmulator, ringout_id: str, kind: str) -> list[RecordedRequest]:
    """The GETs ("ring-out-get") or DELETEs ("ring-out-delete") of one RingOut, oldest first."""
    return [r for r in emulator.requests if r.kind == kind and r.path.rstrip("/").endswith(f"/ring-out/{ringout_id}")]


# --- tests -------------------------------------------------------------------------------------------


def test_answered_call_waits_deferred_in_the_triggerer_then_succeeds(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    A call answered after a few seconds: the task defers, the triggerer's trigger sees it connect and fires
    ``connected``, the task resumes on a worker and succeeds returning the RingOut id. One POST only.
    """
    dag_id, number, _ = ANSWERED
    run = trigger(services, dag_id)
    final = run.wait(TERMINAL, timeout=150)
    ringout_id = ringout_id_for(emulator, services, number)

    assert final == "success", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert run.seen("deferred"), f"the task was never seen deferred: {run.describe()}"
    assert run.xcom() == ringout_id
    assert run.xcom("ringout_id") == ringout_id
    assert len(posts_to(emulator, number)) == 1
    assert requests_for(emulator, ringout_id, "ring-out-delete") == []
    # The trigger ran in the triggerer (its own log file) and fired the connected event that resumed the task.
    trigger_log = run.trigger_logs()
    assert "Trigger fired event" in trigger_log, trigger_log[-3000:]
    assert "'status': 'connected'" in trigger_log
    assert ringout_id in trigger_log
    task_log = run.task_log()
    assert "Pausing task as DEFERRED" in task_log
    assert f"RingOut {ringout_id} connected" in task_log
    # Polled from the triggerer: besides the operator's one read before deferring, the trigger read it too.
    assert len(requests_for(emulator, ringout_id, "ring-out-get")) >= 2


def test_never_answered_call_times_out_and_is_cancelled(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    A call nobody answers, with a 6 s wait_timeout: the trigger fires ``timeout`` at the deadline, the task
    resumes, cancels the call (DELETE) and fails. One POST, one DELETE, and the DELETE is after the deadline.
    """
    dag_id, number, wait_timeout = TIMEOUT
    run = trigger(services, dag_id)
    final = run.wait(TERMINAL, timeout=150)
    ringout_id = ringout_id_for(emulator, services, number)

    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert run.seen("deferred"), f"the task was never seen deferred: {run.describe()}"
    assert len(posts_to(emulator, number)) == 1
    deletes = requests_for(emulator, ringout_id, "ring-out-delete")
    assert len(deletes) == 1, [(r.method, r.path, r.status) for r in deletes]
    assert deletes[0].status == 204
    assert emulator.sessions[ringout_id].cancelled
    # end_time = just after the operator's first GET + wait_timeout; the cancel comes only after it.
    first_get = requests_for(emulator, ringout_id, "ring-out-get")[0].time
    assert deletes[0].time >= first_get + wait_timeout - 0.5
    assert "'status': 'timeout'" in run.trigger_logs()
    assert f"RingOut {ringout_id} did not connect within 6 s; it was cancelled and stopped" in run.task_log()


def test_marking_the_deferred_task_failed_cancels_the_call(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    A user marks the deferred task failed (PATCH the task instance, as the UI does): the triggerer cancels the
    trigger as a user action and its ``on_kill`` sends the DELETE; the task stays failed and polling stops.
    """
    dag_id, number, _ = MARK_FAILED
    run = trigger(services, dag_id)
    run.wait({"deferred"}, timeout=150)
    ringout_id = ringout_id_for(emulator, services, number)
    # The trigger itself is polling (the operator reads once before deferring; the trigger at least once).
    services.wait_for(
        "the trigger to poll the call",
        lambda: len(requests_for(emulator, ringout_id, "ring-out-get")) >= 2,
        timeout=60,
    )
    assert requests_for(emulator, ringout_id, "ring-out-delete") == []

    marked = services.api("PATCH", run.ti_path, {"new_state": "failed"})
    marked_at = time.monotonic()
    assert marked, "PATCH returned no task instances"
    if not AIRFLOW_V_3_3_PLUS:
        # Before 3.3 triggers have no on_kill: the trigger is dropped, the call rings on (docs/operators.md).
        time.sleep(10)
        assert requests_for(emulator, ringout_id, "ring-out-delete") == []
        late_gets = [r for r in requests_for(emulator, ringout_id, "ring-out-get") if r.time > marked_at + 5]
        assert late_gets == [], "the dropped trigger kept polling"
        assert emulator.session_status(ringout_id) is not None  # still ringing: nobody cancelled it
        assert not emulator.sessions[ringout_id].cancelled
        assert run.state() == "failed"
        assert len(posts_to(emulator, number)) == 1
        return

    deletes = services.wait_for(
        "the trigger's on_kill to cancel the call",
        lambda: requests_for(emulator, ringout_id, "ring-out-delete"),
        timeout=60,
    )
    assert len(deletes) == 1
    assert deletes[0].status == 204
    assert deletes[0].time >= marked_at
    assert emulator.sessions[ringout_id].cancelled
    assert len(posts_to(emulator, number)) == 1
    assert run.state() == "failed"
    # on_kill ran in the triggerer because of the user action; the polling stopped with it.
    services.wait_for("the trigger log to show on_kill", lambda: "invoking on_kill" in run.trigger_logs(), timeout=30)
    assert f"Deferred task killed while RingOut {ringout_id} was pending" in run.trigger_logs()
    time.sleep(4)
    late_gets = [r for r in requests_for(emulator, ringout_id, "ring-out-get") if r.time > deletes[0].time + 2]
    assert late_gets == [], "the trigger kept polling after it was killed"
    assert run.state() == "failed"
    assert len(requests_for(emulator, ringout_id, "ring-out-delete")) == 1


def test_triggerer_restart_keeps_the_wait_and_its_original_deadline(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    SIGTERM the triggerer while the task waits on a call nobody answers (wait_timeout 45 s: room for a slow
    restart on a loaded machine), then start a new triggerer: the restart cancels nothing and dials nothing; the
    new triggerer resumes the trigger with the same absolute deadline, so the task times out (and cancels) at the
    original end time, not 45 s after the restart.
    """
    dag_id, number, wait_timeout = RESTART
    run = trigger(services, dag_id)
    run.wait({"deferred"}, timeout=150)
    ringout_id = ringout_id_for(emulator, services, number)
    services.wait_for(
        "the first triggerer to poll the call",
        lambda: len(requests_for(emulator, ringout_id, "ring-out-get")) >= 2,
        timeout=60,
    )
    deadline = requests_for(emulator, ringout_id, "ring-out-get")[0].time + wait_timeout
    old_job = services.running_triggerer_job()

    # Let a good part of the wait pass, so a deadline counted from the restart would be clearly later.
    time.sleep(max(0.0, deadline - wait_timeout + 10 - time.monotonic()))
    old = services.services["triggerer"]
    exit_status = services.stop("triggerer", signal.SIGTERM, timeout=40)
    stopped_at = time.monotonic()
    assert requests_for(emulator, ringout_id, "ring-out-delete") == [], "the restart cancelled the call"
    # A graceful stop, as a deploy does it (3.3 says so; 3.0 only logs the end of its trigger loop).
    assert re.search(
        r"Exiting gracefully upon receiving signal 15|Exited trigger loop", tail_file(old.log_path, 200)
    ), f"exit status {exit_status}"

    restarted_at = time.monotonic()
    services.start("triggerer")
    new_job = services.wait_new_triggerer(old_job)
    gets_before = len(requests_for(emulator, ringout_id, "ring-out-get"))
    services.wait_for(
        "the new triggerer to resume polling the call",
        lambda: len(requests_for(emulator, ringout_id, "ring-out-get")) > gets_before,
        timeout=60,
    )
    assert time.monotonic() < deadline, "the restart took too long to tell the deadlines apart; raise wait_timeout"
    assert run.state() == "deferred"
    assert requests_for(emulator, ringout_id, "ring-out-delete") == []

    final = run.wait(TERMINAL, timeout=deadline - time.monotonic() + 90)
    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    deletes = requests_for(emulator, ringout_id, "ring-out-delete")
    assert len(deletes) == 1, "expected only the timeout's cancel"
    assert len(posts_to(emulator, number)) == 1, "the call was dialled again"
    resumed = run.left("deferred")
    assert resumed is not None, run.describe()
    naive_deadline = restarted_at + wait_timeout
    timing = (
        f"deadline=+0, stopped={stopped_at - deadline:+.1f}s, restarted={restarted_at - deadline:+.1f}s, "
        f"left deferred={resumed - deadline:+.1f}s, DELETE={deletes[0].time - deadline:+.1f}s, "
        f"restart+wait_timeout={naive_deadline - deadline:+.1f}s; states {run.describe()}"
    )
    print(timing)
    # The trigger fired at the original deadline (give the triggerer and scheduler loops a few seconds) ...
    assert deadline - 0.5 <= resumed <= deadline + 8, timing
    assert deletes[0].time >= deadline - 0.5, timing
    # ... well before a deadline restarted from the restart would have come.
    assert resumed < naive_deadline - 2, timing
    assert deletes[0].time < naive_deadline, timing
    # Both triggerers ran the trigger; neither ran on_kill (a restart is not a user action).
    trigger_logs = sorted(run.log_dir().glob("*.trigger.*.log"))
    assert {p.name.rsplit(".trigger.", 1)[1] for p in trigger_logs} >= {f"{old_job}.log", f"{new_job}.log"}, (
        trigger_logs
    )
    assert "on_kill" not in run.trigger_logs()
    assert "'status': 'timeout'" in run.trigger_logs()
    services.wait_healthy(["triggerer"], timeout=60)


@pytest.mark.parametrize("dag_id", list(CRASHES))
def test_worker_killed_then_retried_never_dials_twice(
    services: AirflowServices, emulator: RingCentralEmulator, dag_id: str
) -> None:
    """
    The worker process is SIGKILLed on the first try (after placing the call, or after seeing it connect);
    Airflow retries the task. On Airflow 3.3 the retry finds the call in task_state_store: it reconnects to the
    pending call, or succeeds at once for the connected one. Either way RingCentral gets one POST.
    """
    number = CRASHES[dag_id][1]
    run = trigger(services, dag_id)
    final = run.wait(TERMINAL, timeout=180)
    tries = services.query("SELECT try_number FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run.run_id))
    if not AIRFLOW_V_3_3_PLUS:
        # Before 3.3 there is no task_state_store (docs/operators.md, retries): pinned as it behaves there.
        observed = (final, tries, len(posts_to(emulator, number)))
        assert observed == ("failed", [(1,)], 1), f"{observed} {run.describe()}\n{run.task_log()[-4000:]}"
        return
    assert final == "success", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert tries == [(2,)], tries  # the first try really died and Airflow retried it
    assert len(posts_to(emulator, number)) == 1
    assert run.xcom() == ringout_id_for(emulator, services, number)


@contextlib.contextmanager
def busy_machine(workers: int = 2) -> Iterator[None]:
    """Spin ``workers`` CPU-bound processes meanwhile, so the triggerer and scheduler loops run late."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(workers)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def call_counts(emulator: RingCentralEmulator, number: str) -> dict[str, Any]:
    """Calls placed to ``number``, how many were stopped, and the most DELETEs one call received."""
    sessions = [s for s in emulator.sessions.values() if s.to_number == number]
    deletes = [len(requests_for(emulator, s.id, "ring-out-delete")) for s in sessions]
    return {
        "posts": len(posts_to(emulator, number)),
        "placed": len(sessions),
        "stopped": sum(s.cancelled for s in sessions),
        "most_deletes": max(deletes, default=0),
    }


def test_ten_deferred_sensor_timeouts_at_once_stop_every_call(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    Ten runs at once, each placing a call nobody answers and waiting on it with a deferrable sensor
    (``timeout`` 5 s, ``poke_interval`` 1 s) while the machine is busy. Airflow's own timeout for the deferred
    sensor races the trigger's deadline; whoever wins, every run fails, every call is stopped, none is placed
    twice and none is cancelled twice.
    """
    dag_id, number = SENSOR_TIMEOUT
    with busy_machine():
        runs = [trigger(services, dag_id) for _ in range(10)]
        finals = [run.wait(TERMINAL, timeout=240) for run in runs]
    counts = call_counts(emulator, number)
    print(f"{dag_id}: {counts}")
    assert finals == ["failed"] * 10, [f"{run.run_id}: {run.describe()}" for run in runs]
    assert counts == {"posts": 10, "placed": 10, "stopped": 10, "most_deletes": 1}, counts


def test_deferred_operator_execution_timeout_stops_the_call(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    A deferrable operator whose ``execution_timeout`` (12 s) ends long before its ``wait_timeout`` (120 s):
    the call is stopped, by the time the execution timeout ends, not 120 s later, and dialled once.
    """
    dag_id, number = OPERATOR_EXECUTION_TIMEOUT
    run = trigger(services, dag_id)
    final = run.wait(TERMINAL, timeout=90)
    ringout_id = ringout_id_for(emulator, services, number)
    counts = call_counts(emulator, number)
    print(f"{dag_id}: {counts}")
    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert counts == {"posts": 1, "placed": 1, "stopped": 1, "most_deletes": 1}, counts
    first_get = requests_for(emulator, ringout_id, "ring-out-get")[0].time
    (delete,) = requests_for(emulator, ringout_id, "ring-out-delete")
    assert delete.time - first_get < 12, "the call rang on past the task's execution_timeout"


def test_reschedule_sensor_timeout_between_pokes_stops_the_call(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    A reschedule-mode sensor (``poke_interval`` 10 s, ``timeout`` 15 s): the timeout falls between two pokes.
    The run fails and the call is stopped, once.
    """
    dag_id, number = RESCHEDULE_TIMEOUT
    run = trigger(services, dag_id)
    final = run.wait(TERMINAL, timeout=120)
    counts = call_counts(emulator, number)
    print(f"{dag_id}: {counts}")
    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert counts == {"posts": 1, "placed": 1, "stopped": 1, "most_deletes": 1}, counts


def test_airflow_timeout_with_the_triggerer_down_stops_the_call(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    The triggerer is down, so the trigger never runs: Airflow's own timeout for the deferral (``wait_timeout``
    plus the margin) fails the task through ``__fail__``; resuming, the operator stops the still-pending call
    before it fails. One POST, one DELETE.
    """
    dag_id, number = TRIGGERER_DOWN
    old_job = services.running_triggerer_job()
    services.stop("triggerer", signal.SIGTERM, timeout=40)
    try:
        run = trigger(services, dag_id)
        final = run.wait(TERMINAL, timeout=120)
    finally:
        services.start("triggerer")
        services.wait_new_triggerer(old_job)
    counts = call_counts(emulator, number)
    print(f"{dag_id}: {counts}")
    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert run.seen("deferred"), run.describe()
    assert "Airflow failed the deferred task while RingOut" in run.task_log()
    assert counts == {"posts": 1, "placed": 1, "stopped": 1, "most_deletes": 1}, counts


def test_call_that_may_have_connected_is_not_retried_until_the_task_is_cleared(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    The call connects and vanishes between two reads (``retries=1``): the task fails once with "may have
    connected", Airflow does not retry it (one POST, try 1 only). A user clears the task: that is a deliberate
    "call again", so the next try places a new call, on every core.
    """
    dag_id, number = VANISHED_THEN_CLEARED
    run = trigger(services, dag_id)
    final = run.wait(TERMINAL, timeout=150)
    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    time.sleep(5)  # a retry, if Airflow scheduled one, would start now (retry_delay=0)
    assert run.state() == "failed"
    assert len(posts_to(emulator, number)) == 1
    assert "may have connected; it is not dialled again" in " ".join(run.task_log().split())

    services.api(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        {"dry_run": False, "dag_run_id": run.run_id, "task_ids": [TASK_ID], "only_failed": True},
    )
    services.wait_for("the cleared task to run again", lambda: len(posts_to(emulator, number)) == 2, timeout=150)
    run.wait(TERMINAL, timeout=150)
    assert len(posts_to(emulator, number)) == 2, run.describe()


def test_rescheduled_sensor_cancels_before_its_timeout(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    """
    A reschedule-mode sensor on a call nobody answers, under the real scheduler (each poke a new worker
    process): the poke that would be the last before ``timeout`` cancels the call, once, and the task fails
    with the sensor timeout (not retried). Airflow 3.0 and 3.3 alike.
    """
    dag_id, number, _ = RESCHEDULE_RUN_TO_TIMEOUT
    run = trigger(services, dag_id)
    run.task_id = "call"
    final = run.wait(TERMINAL, timeout=240)
    ringout_id = ringout_id_for(emulator, services, number)
    assert final == "failed", f"{run.describe()}\n{run.task_log()[-4000:]}"
    assert run.seen("up_for_reschedule"), run.describe()
    deletes = requests_for(emulator, ringout_id, "ring-out-delete")
    assert len(deletes) == 1, f"{len(deletes)} DELETEs; {run.describe()}\n{run.task_log()[-6000:]}"
    assert emulator.sessions[ringout_id].cancelled
    gets = requests_for(emulator, ringout_id, "ring-out-get")
    assert len(gets) >= 2  # it was rescheduled at least once before the last poke
    log = run.task_log()
    assert "did not connect within the sensor's timeout" in " ".join(log.split())
    assert "TypeError" not in log
    assert len(posts_to(emulator, number)) == 1


def test_helper_reports_a_dead_service(tmp_path: Path) -> None:
    """The helper's liveness check names the service that died and shows its log, instead of waiting on."""
    airflow = AirflowServices(tmp_path / "home", DAGS_FOLDER, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "nonsense://"})
    try:
        airflow.start("scheduler")
        with pytest.raises(ServiceError, match="scheduler exited"):
            airflow.wait_healthy(["scheduler"], timeout=120)
    finally:
        airflow.close()
    assert airflow.services == {}
    assert all(not s.alive() for s in airflow.ended)


def test_no_secret_reaches_any_log(services: AirflowServices, emulator: RingCentralEmulator) -> None:
    """
    After every scenario, with the services stopped (so their shutdown is logged too), neither the client
    secret, the JWT, nor any access or refresh token the emulator issued appears in a service log (api-server,
    scheduler with its task output, dag-processor, every triggerer) or under AIRFLOW_HOME/logs.
    """
    if not emulator.issued_tokens:  # run alone: make the services use the credentials first
        trigger(services, ANSWERED[0]).wait(TERMINAL, timeout=150)
    secrets = {"client secret": TEST_CLIENT_SECRET, "JWT": TEST_JWT}
    secrets.update({f"issued token #{i}": token for i, token in enumerate(emulator.issued_tokens)})
    assert len(secrets) > 2, "no token was issued: nothing used the connection"
    services.close()

    service_logs = services.service_logs()
    task_logs = services.task_logs()
    assert {p.name for p in service_logs} >= {"api-server.log", "scheduler.log", "dag-processor.log", "triggerer.log"}
    assert any(p.name.startswith("attempt=") for p in task_logs), "no task log was written"
    assert any(".trigger." in p.name for p in task_logs), "no trigger log was written"
    leaks = [
        f"{name} in {path.relative_to(services.home)}"
        for path in [*service_logs, *task_logs]
        for name, secret in secrets.items()
        if secret in path.read_text(errors="replace")
    ]
    assert leaks == []
