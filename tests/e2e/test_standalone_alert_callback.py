"""
A DAG-level alert escalation under real Airflow services: it must finish inside the DAG processor's time.

Airflow runs a DAG's ``on_failure_callback`` in a DAG file processor, which the DAG processor SIGKILLs
``[dag_processor] dag_file_processor_timeout`` seconds after it started. A default escalation (60 s per number)
would be killed while the first number still rings: the second engineer is never called and the ringing call is
never cancelled. Here the api-server, scheduler, dag-processor and triggerer run as separate processes
(``tests/e2e/standalone.py``) with the timeout at 60 s; a failing DAG alerts two engineers who do not answer,
with the default ``per_number_timeout``: both must be rung, both cancelled, before the processor's time is up.
A task-level callback on the worker gets ``[core] task_success_overtime`` (20 s): there only the first engineer
fits, and that call is cancelled before the worker's supervisor stops the process. Its task log holds no
parse-time warning (the task process parses the DAG file too), the alert's last line names the engineer not rung
and why, and all of it sits in Airflow's "Post Execute" log group (collapsed in the UI; a screenshot of it goes
to ``artifacts/screenshots/`` when Playwright and ``/usr/bin/chromium`` are there).

Run: ``pytest tests/e2e/test_standalone_alert_callback.py -q -p no:cacheprovider -x`` (about three minutes).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.e2e.standalone import AirflowServices, services_on_emulator

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# Written to artifacts/ (ignored by git); RINGOUT_SCREENSHOTS=docs/screenshots refreshes the one docs/notifier.md shows.
SCREENSHOTS = Path(os.environ.get("RINGOUT_SCREENSHOTS") or REPO / "artifacts" / "screenshots")
CHROMIUM = Path("/usr/bin/chromium")

DAG_ID = "alert_dag_level_escalation"
TASK_DAG_ID = "alert_task_level_escalation"
ENGINEERS = ("+15550170001", "+15550170002")
TASK_ENGINEERS = ("+15550170011", "+15550170012")
BRIDGE = "+15550170099"
PROCESSOR_TIMEOUT = 60
WORKER_OVERTIME = 20  # Airflow's default

DAG_FILE = f'''
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ringout.notifications.ringout import RingOutNotifier

with DAG(
    dag_id="{DAG_ID}",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    # Default per_number_timeout (60 s): two of them cannot fit the processor's time as they are.
    on_failure_callback=RingOutNotifier(to_numbers={list(ENGINEERS)!r}, connect_to="{BRIDGE}", poll_interval=5),
):

    @task(retries=0)
    def fail() -> None:
        raise RuntimeError("fails on purpose to run the DAG-level alert")

    fail()

with DAG(dag_id="{TASK_DAG_ID}", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):

    @task(
        retries=0,
        on_failure_callback=RingOutNotifier(
            to_numbers={list(TASK_ENGINEERS)!r}, connect_to="{BRIDGE}", poll_interval=5
        ),
    )
    def fail_too() -> None:
        raise RuntimeError("fails on purpose to run the task-level alert")

    fail_too()
'''


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    """Nobody answers: every engineer's phone rings until the call is cancelled."""
    rc = RingCentralEmulator(host="127.0.0.1", default_script=CallScript(outcome=Outcome.NEVER_ANSWERS)).start()
    try:
        yield rc
    finally:
        rc.stop()


@pytest.fixture(scope="module")
def services(emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    home = tmp_path_factory.mktemp("airflow-alert-services")
    dags = home / "dags"
    dags.mkdir()
    (dags / "alert_dag_level_escalation.py").write_text(DAG_FILE)
    env = {
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": str(PROCESSOR_TIMEOUT),
        "AIRFLOW__CORE__TASK_SUCCESS_OVERTIME": str(WORKER_OVERTIME),
    }
    with services_on_emulator(emulator, home, dags, (DAG_ID, TASK_DAG_ID), env) as airflow:
        yield airflow


def processor_logs(home: Path) -> str:
    """Everything the DAG processor and its file processors wrote (callbacks log there)."""
    files = [p for p in (home / "logs").rglob("*") if p.is_file()] + list((home / "service-logs").glob("*.log"))
    return "\n".join(p.read_text(errors="replace") for p in files)


def run_to_failure(services: AirflowServices, dag_id: str) -> str:
    """Trigger a run through the REST API and wait until it failed; returns its run id."""
    run_id = f"e2e__{uuid.uuid4().hex[:12]}"
    services.api("POST", f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None})
    services.wait_for(
        f"the run of {dag_id} to fail",
        lambda: services.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"] == "failed",
        timeout=180,
    )
    return run_id


def calls_from(emulator: RingCentralEmulator, numbers: tuple[str, ...]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """The POSTs, the DELETEs and the sessions (by id) of the calls whose first leg is one of ``numbers``."""
    sessions = {rid: info for rid, info in emulator.sessions.items() if info.from_number in numbers}
    posts = [r for r in emulator.requests if r.kind == "ring-out-create" and r.json["from"]["phoneNumber"] in numbers]
    deletes = [r for r in emulator.requests if r.method == "DELETE" and r.path.rsplit("/", 1)[-1] in sessions]
    return posts, deletes, sessions


def test_dag_level_escalation_calls_and_cancels_both_numbers_inside_the_processor_timeout(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    run_to_failure(services, DAG_ID)
    services.wait_for(
        "both calls to be cancelled",
        lambda: len(calls_from(emulator, ENGINEERS)[1]) >= 2,
        timeout=PROCESSOR_TIMEOUT + 30,
    )

    posts, deletes, by_id = calls_from(emulator, ENGINEERS)
    assert [r.json["from"]["phoneNumber"] for r in posts] == list(ENGINEERS), services.log_tails(60)
    assert all(r.json["to"]["phoneNumber"] == BRIDGE and r.json["playPrompt"] is True for r in posts)
    sessions = by_id
    assert len(sessions) == 2 and all(info.cancelled for info in sessions.values())
    assert [d.path.rsplit("/", 1)[-1] for d in deletes] == [
        next(s.id for s in sessions.values() if s.from_number == number) for number in ENGINEERS
    ]
    # The whole escalation, POST to last cancel, fitted the processor's time (which also covered parsing).
    assert deletes[-1].time - posts[0].time < PROCESSOR_TIMEOUT - 3
    assert deletes[0].time < posts[1].time  # the first call was cancelled before the second engineer rang

    final = "RingOut alert FAILED: nobody was reached"  # logged once the last cancel was confirmed
    services.wait_for("the alert's last log line", lambda: final in processor_logs(services.home), timeout=30)
    logs = processor_logs(services.home)
    assert "waits shortened to fit the callback's time" in logs
    assert "has been running for" not in logs  # the processor was not killed for exceeding its timeout
    assert not any(number in logs for number in (*ENGINEERS, BRIDGE))  # masked


@pytest.fixture(scope="module")
def task_level_run(services: AirflowServices) -> str:
    """The run id of one failed run of the task-level DAG."""
    return run_to_failure(services, TASK_DAG_ID)


def task_log_lines(services: AirflowServices, run_id: str) -> list[str]:
    """The raw lines of the task's log file(s), as Airflow wrote them (JSON lines)."""
    folder = services.home / "logs" / f"dag_id={TASK_DAG_ID}" / f"run_id={run_id}"
    return [line for p in sorted(folder.rglob("*.log")) for line in p.read_text(errors="replace").splitlines()]


def test_task_level_escalation_fits_the_workers_overtime_and_cancels_its_call(
    services: AirflowServices, emulator: RingCentralEmulator, task_level_run: str
) -> None:
    """
    On a worker, a task's failure callback is stopped ``[core] task_success_overtime`` (20 s) after the task
    ended: with two engineers at the default 60 s, only the first fits; it is rung and cancelled in time.
    """
    run_id = task_level_run
    services.wait_for("the call to be cancelled", lambda: calls_from(emulator, TASK_ENGINEERS)[1], timeout=60)
    time.sleep(WORKER_OVERTIME)  # nothing else may be rung afterwards

    posts, deletes, sessions = calls_from(emulator, TASK_ENGINEERS)
    assert [r.json["from"]["phoneNumber"] for r in posts] == [TASK_ENGINEERS[0]], services.log_tails(60)
    assert [info.cancelled for info in sessions.values()] == [True]
    assert deletes[0].time - posts[0].time < WORKER_OVERTIME - 3
    task_log = "\n".join(
        p.read_text(errors="replace")
        for p in (services.home / "logs" / f"dag_id={TASK_DAG_ID}" / f"run_id={run_id}").rglob("*.log")
    )
    assert "the callback's time only allows 1 of 2 number(s)" in task_log, task_log[-3000:]
    assert "RingOut alert FAILED: nobody was reached" in task_log  # the callback ran to its end
    assert "overtime reached" not in processor_logs(services.home)  # the worker did not have to stop it
    second = mask_phone_number(TASK_ENGINEERS[1], force=True)
    assert f"{second}: not rung: no time was left (the callback's time: " in task_log
    assert "use RingOutEscalationOperator (a task of its own, no callback clock), or raise" in task_log
    # The task process parses the DAG file too: the parse-time warning is for the DAG processor's log only.
    assert "RingOutNotifier: an escalation of" not in task_log
    assert "RingOutNotifier: an escalation of 2 numbers" in processor_logs(services.home)


def core_groups_post_execute() -> bool:
    """Whether the installed core's task runner opens a "Post Execute" log group (3.3 does, 3.0 does not)."""
    import inspect

    from airflow.sdk.execution_time import task_runner

    return "::group::Post Execute" in inspect.getsource(task_runner)


@pytest.mark.skipif(
    not core_groups_post_execute(),
    reason="this Airflow core writes no log groups (3.0 does not): the alert's lines are not folded away",
)
def test_the_alerts_outcome_is_in_the_post_execute_group_of_the_task_log(
    services: AirflowServices, task_level_run: str
) -> None:
    """Airflow runs task callbacks after it opened the "Post Execute" group; the UI shows that group collapsed."""
    services.wait_for(
        "the alert's last line",
        lambda: any("RingOut alert FAILED" in line for line in task_log_lines(services, task_level_run)),
        timeout=30,
    )
    lines = task_log_lines(services, task_level_run)
    opened = next(i for i, line in enumerate(lines) if "::group::Post Execute" in line)
    alert = [i for i, line in enumerate(lines) if "RingOut alert" in line]
    closed = next(i for i, line in enumerate(lines) if "::endgroup::" in line and i > opened)
    assert alert and opened < alert[0] and alert[-1] < closed, "\n".join(lines[-40:])
    screenshot_task_log(services, task_level_run)


def screenshot_task_log(services: AirflowServices, run_id: str) -> None:
    """The task's log page in the UI, the group collapsed and then opened (only when a browser is available)."""
    try:
        from playwright import sync_api
    except ImportError:
        return
    if not CHROMIUM.exists():
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{services.base_url}/dags/{TASK_DAG_ID}/runs/{run_id}/tasks/fail_too"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(url)
            group = page.get_by_text("Post Execute").first
            group.wait_for()
            page.screenshot(path=str(SCREENSHOTS / "notifier-task-log-collapsed.png"))
            group.click()
            page.get_by_text("RingOut alert FAILED").first.wait_for()
            page.screenshot(path=str(SCREENSHOTS / "notifier-task-log-post-execute.png"))
        finally:
            browser.close()
