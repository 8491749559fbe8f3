"""
``RingOutNotifier`` as the ``AsyncCallback`` of a ``DeadlineAlert`` (Airflow 3.1+) under real Airflow services
(api-server, scheduler, DAG processor, triggerer; ``tests/e2e/standalone.py``) with Airflow's default settings
(its own loop intervals too, not the harness's fast ones).

A run past its deadline pages once: the scheduler marks the deadline missed and queues the callback, the triggerer
runs the notifier (one RingOut to the engineer, acknowledged), and when that run then fails, its task's failure
alert (same numbers) is the same incident (the deadline's context names the run) and places no second call.
A run done in time pages nobody: its deadline row is pruned when the run succeeds, and a late run's page delivered
afterwards shows the machinery ran, with no call to the in-time DAG's number. Both are scripted by events (a gate
file the late task waits for, the emulator's record, Airflow's deadline and callback tables), never by sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_1_PLUS
from tests.e2e.dags_deadline.ringout_deadline_services import BRIDGE, GATE_ENV, IN_TIME, LATE
from tests.e2e.standalone import AirflowServices, services_on_emulator
from tests.e2e.test_standalone_deferred import TERMINAL, RunWatch, trigger

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="this Airflow core has no Deadline Alerts (they came in 3.1)"),
]

DAGS_FOLDER = Path(__file__).resolve().parent / "dags_deadline"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    """The late DAG's engineer answers and presses 1; nobody else answers."""
    rc = RingCentralEmulator(host="127.0.0.1", default_script=CallScript(outcome=Outcome.NEVER_ANSWERS)).start()
    rc.script_caller(LATE[1], CallScript(outcome=Outcome.ANSWERED, after=1, talk=300, linger=30))
    try:
        yield rc
    finally:
        rc.stop()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the late run's task watches for a file named after its run id."""
    return tmp_path_factory.mktemp("deadline-gate")


@pytest.fixture(scope="module")
def services(
    emulator: RingCentralEmulator, gate: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowServices]:
    home = tmp_path_factory.mktemp("airflow-deadline")
    dags = (LATE[0], IN_TIME[0])
    with services_on_emulator(
        emulator, home, DAGS_FOLDER, dags, {GATE_ENV: str(gate)}, airflow_defaults=True
    ) as airflow:
        yield airflow


def posts_from(emulator: RingCentralEmulator, number: str) -> list[Any]:
    """The RingOuts placed whose first leg (the engineer rung) is ``number``."""
    return [r for r in emulator.requests if r.kind == "ring-out-create" and r.json["from"]["phoneNumber"] == number]


def deadline_rows(services: AirflowServices, run: RunWatch) -> list[tuple[Any, ...]]:
    """The run's rows of Airflow's deadline table, with their callback: (missed, callback type, callback state)."""
    return services.query(
        "SELECT d.missed, c.type, c.state FROM deadline d JOIN dag_run r ON d.dagrun_id = r.id "
        "LEFT JOIN callback c ON d.callback_id = c.id WHERE r.dag_id = ? AND r.run_id = ?",
        (run.dag_id, run.run_id),
    )


def page_late_run(services: AirflowServices, emulator: RingCentralEmulator, gate: Path) -> RunWatch:
    """Trigger the late DAG, wait until its page was delivered by the triggerer, then let the run go on and fail."""
    run = trigger(services, LATE[0])
    run.task_id = "hold"
    services.wait_for(
        "the late run's deadline callback to succeed in the triggerer",
        lambda: [row for row in deadline_rows(services, run) if row[2] == "success"],
        timeout=180,
    )
    (gate / run.run_id).touch()
    assert run.wait(TERMINAL, timeout=180) == "failed", run.describe()
    return run


def test_a_run_past_its_deadline_pages_once(
    services: AirflowServices, emulator: RingCentralEmulator, gate: Path
) -> None:
    before = len(posts_from(emulator, LATE[1]))
    run = page_late_run(services, emulator, gate)
    # The task's failure alert (same numbers, same run) is the incident the late page delivered: it does not ring.
    ends = ("not calling again", "RingOut alert delivered", "RingOut alert FAILED")
    services.wait_for("the failure alert's outcome", lambda: any(e in run.task_log() for e in ends), timeout=90)
    assert "was delivered within dedup_window (3600 s); not calling again" in run.task_log()

    assert deadline_rows(services, run) == [(1, "triggerer", "success")]  # missed once, run by the triggerer
    (post,) = posts_from(emulator, LATE[1])[before:]  # one RingOut in all, from the deadline's callback
    assert post.json["to"]["phoneNumber"] == BRIDGE and post.json["playPrompt"] is True
    sessions = [s for s in emulator.sessions.values() if s.from_number == LATE[1]]
    assert len(sessions) == 1 and not sessions[0].cancelled  # acknowledged: connected on to the bridge, not cancelled
    # A deadline callback has no task: its lines are in the triggerer's own log, numbers masked.
    triggerer = "\n".join(p.read_text(errors="replace") for p in services.service_logs() if "triggerer" in p.name)
    assert "RingOut alert delivered: +1******0001 acknowledged (pressed 1)" in triggerer
    every_log = triggerer + "\n".join(p.read_text(errors="replace") for p in services.task_logs())
    assert LATE[1] not in every_log and BRIDGE not in every_log


def test_a_run_done_in_time_pages_nobody(services: AirflowServices, emulator: RingCentralEmulator, gate: Path) -> None:
    run = trigger(services, IN_TIME[0])
    run.task_id = "done"
    assert run.wait(TERMINAL, timeout=180) == "success", run.describe()
    # The run ended before its deadline, so Airflow pruned the deadline: nothing is left that could page.
    services.wait_for("the in-time run's deadline to be pruned", lambda: not deadline_rows(services, run), timeout=60)
    # The scheduler and triggerer are live and paging: a late run pages after that.
    late = page_late_run(services, emulator, gate)

    assert [row[2] for row in deadline_rows(services, late)] == ["success"]
    assert posts_from(emulator, IN_TIME[1]) == []
    assert not [s for s in emulator.sessions.values() if s.from_number == IN_TIME[1]]
