"""
Alerts a person must acknowledge, unknown outcomes, one escalation per incident, and alerts that fit their callback.

Everything talks to the RingCentral emulator over loopback; the cross-process test runs two real Python processes
sharing the state folder. The DAG-level escalation under real Airflow services is in
``tests/e2e/test_standalone_alert_callback.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.notifications import _budget
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.state import claims as _dedup
from airflow_provider_ringout.testing import CallScript, Outcome
from tests.notifications.test_ringout_notifier import FIRST, FROM, SECOND, THIRD, created, logs, make_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs"]  # the fixture, re-used from the notifier's main test module

BRIDGE = "+14155550199"  # the auto-answering line an acknowledged engineer is connected to
REPO = Path(__file__).resolve().parents[2]


def posts(emulator: RingCentralEmulator) -> list[dict[str, Any]]:
    """The bodies of the ring-out POSTs, in order."""
    return [r.json for r in emulator.requests if r.kind == "ring-out-create" and r.json]


def rung_first(emulator: RingCentralEmulator) -> list[str]:
    """The numbers rung first (the RingOut ``from``), in order."""
    return [body["from"]["phoneNumber"] for body in posts(emulator)]


def session_of(emulator: RingCentralEmulator, caller: str) -> Any:
    [info] = [info for info in emulator.sessions.values() if info.from_number == caller]
    return info


def acked(**kwargs: Any) -> RingOutNotifier:
    kwargs.setdefault("connect_to", BRIDGE)
    kwargs.setdefault("poll_interval", 0.1)
    return RingOutNotifier(**kwargs)


# --- acknowledged alerts (connect_to) ----------------------------------------------------------------------


def test_voicemail_and_no_answer_are_not_acknowledged_the_person_who_presses_1_is(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.VOICEMAIL, after=0.2))
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script_caller(THIRD, CallScript(outcome=Outcome.ANSWERED, after=0.4))

    acked(to_numbers=[FIRST, SECOND, THIRD], per_number_timeout=1).notify(make_context())

    # Each engineer is rung first, with the press-1 prompt, and connected on to the bridge.
    assert rung_first(emulator) == [FIRST, SECOND, THIRD]
    assert {body["to"]["phoneNumber"] for body in posts(emulator)} == {BRIDGE}
    assert all(body["playPrompt"] is True for body in posts(emulator))
    # The voicemail answered but could not press 1: not acknowledged, and RingCentral could not stop it.
    assert session_of(emulator, FIRST).status == {
        "callStatus": "InProgress",
        "callerStatus": "Success",
        "calleeStatus": "InProgress",
    }
    # Nobody answered the second: cancelled. The third pressed 1: connected, not cancelled.
    assert session_of(emulator, SECOND).cancelled
    assert not session_of(emulator, THIRD).cancelled
    deletes = [r.path.rsplit("/", 1)[-1] for r in emulator.requests if r.method == "DELETE"]
    assert deletes == [session_of(emulator, FIRST).id, session_of(emulator, SECOND).id]
    out = logs()
    assert "nobody pressed 1 (a voicemail?)" in out
    assert "RingOut alert delivered" in out and "acknowledged (pressed 1)" in out
    assert out.count("RingOut alert delivered") == 1


def test_voicemail_reads_as_delivered_without_the_prompt(ringcentral_conn_env: RingCentralEmulator) -> None:
    """Why connect_to exists: in the from_number shape a voicemail greeting on the alerted leg reads as connected."""
    emulator = ringcentral_conn_env
    emulator.script(FIRST, CallScript(outcome=Outcome.VOICEMAIL, after=0.2))

    RingOutNotifier(
        to_numbers=[FIRST, SECOND], from_number=FROM, wait_for_connection=True, per_number_timeout=2, poll_interval=0.1
    ).notify(make_context())

    assert created(emulator) == [FIRST]  # escalation stopped at a voicemail


def test_connect_to_settings_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(RingCentralConfigError, match="connect_to and from_number cannot be given together"):
        RingOutNotifier(to_numbers=[FIRST], connect_to=BRIDGE, from_number=FROM)
    with pytest.raises(RingCentralConfigError, match="connect_to"):
        RingOutNotifier(to_numbers=[FIRST], connect_to="555-0199")
    with pytest.raises(RingCentralConfigError, match="wait_for_connection=False"):
        RingOutNotifier(to_numbers=[FIRST], connect_to=BRIDGE, wait_for_connection=False)
    notifier = RingOutNotifier(to_numbers=[FIRST], connect_to="{{ params.bridge }}")  # checked once rendered
    assert notifier.wait_for_connection is True
    assert "connect_to" in notifier.template_fields and "dedup_key" in notifier.template_fields


# --- unknown outcomes: never redial, escalate to the next person -------------------------------------------


def test_a_session_that_vanished_unseen_is_not_confirmed_and_the_next_person_is_rung(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    # Answered and hung up between two polls: the session is gone before it was ever seen connected.
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.SESSION_DISAPPEARS, after=0.3))
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.NEVER_ANSWERS))

    acked(to_numbers=[FIRST, SECOND], per_number_timeout=1.5, poll_interval=0.8).notify(make_context())

    assert rung_first(emulator) == [FIRST, SECOND]  # the next person; the first never again
    out = logs()
    assert "not confirmed (may have connected)" in out
    assert "failed" not in out.lower().replace("alert failed: nobody", "")
    assert "RingOut alert NOT CONFIRMED" in out
    assert "RingOut alert FAILED: nobody was reached" not in out


def test_an_unconfirmed_post_is_not_redialled_and_the_next_person_is_rung(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.inject("drop_after_processing", method="POST", path="ring-out-create")
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3))

    acked(to_numbers=[FIRST, SECOND], per_number_timeout=3).notify(make_context())

    assert rung_first(emulator) == [FIRST, SECOND]
    assert "not confirmed (may have connected)" in logs()


def test_a_503_on_the_post_is_not_resent(ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]) -> None:
    """A 503 from a gateway may come after the call was placed: only a 429 says "not processed"."""
    emulator = ringcentral_conn_env
    emulator.inject("503", method="POST", path="ring-out-create")
    emulator.script(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3))
    notifier = RingOutNotifier(
        to_numbers=[FIRST, SECOND], from_number=FROM, wait_for_connection=True, per_number_timeout=3, poll_interval=0.1
    )

    notifier.notify(make_context())

    assert [(r.json["to"]["phoneNumber"], r.status) for r in emulator.requests if r.kind == "ring-out-create"] == [
        (FIRST, 503),
        (SECOND, 200),
    ]
    assert "not confirmed (may have connected)" in logs()


def test_a_429_on_the_post_is_resent(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.inject("429", method="POST", path="ring-out-create", retry_after=0)

    RingOutNotifier(to_numbers=[FIRST], from_number=FROM).notify(make_context())

    assert [r.status for r in emulator.requests if r.kind == "ring-out-create"] == [429, 200]


# --- one escalation per incident ---------------------------------------------------------------------------


def test_many_failing_tasks_of_one_run_place_one_escalation(ringcentral_conn_env: RingCentralEmulator) -> None:
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM)
    run = make_context()
    for task_id in ("extract", "transform", "load"):
        ti = type(run["ti"])(**{**vars(run["ti"]), "task_id": task_id})
        notifier({**run, "ti": ti, "task_instance": ti})
    notifier({"dag": run["dag"], "run_id": run["run_id"], "reason": "task_failure"})  # the DAG-level callback

    assert created(ringcentral_conn_env) == [FIRST]


def test_a_per_task_dedup_key_alerts_for_every_failing_try(ringcentral_conn_env: RingCentralEmulator) -> None:
    notifier = RingOutNotifier(
        to_numbers=[FIRST], from_number=FROM, dedup_key="{{ ti.task_id }}-{{ ti.try_number }}-{{ run_id }}"
    )
    run = make_context()
    notifier(run)
    notifier(run)  # the same try again: grouped
    retry = type(run["ti"])(**{**vars(run["ti"]), "try_number": 2})
    notifier({**run, "ti": retry, "task_instance": retry})

    assert created(ringcentral_conn_env) == [FIRST, FIRST]


class _Clock:
    """The claims' clock, stopped: it moves only when the test moves it."""

    def __init__(self) -> None:
        self.wall, self.mono, self.offset = time.time(), time.monotonic(), 0.0

    def time(self) -> float:
        return self.wall + self.offset

    def monotonic(self) -> float:
        return self.mono + self.offset


def test_the_key_expires_after_dedup_window(
    ringcentral_conn_env: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted by a clock the test moves (the claims' clock), never by sleeping past a short window."""
    clock = _Clock()
    monkeypatch.setattr(_dedup, "time", clock)
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM, dedup_window=600)
    run = make_context()
    notifier(run)
    clock.offset = 599  # just inside the window
    notifier(run)
    clock.offset = 601  # the window has passed
    notifier(run)

    assert created(ringcentral_conn_env) == [FIRST, FIRST]


CLAIMANT = """
import json, sys, time
from types import SimpleNamespace
from airflow_provider_ringout.notifications.ringout import RingOutNotifier

from pathlib import Path
run_id, task_id, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ti = SimpleNamespace(dag_id="alerting_dag", run_id=run_id, task_id=task_id, map_index=-1, try_number=1, state="failed")
(folder / f"{task_id}.ready").touch()
while not (folder / "go").exists():  # both processes alert at the same moment, once both have imported Airflow
    time.sleep(0.001)
RingOutNotifier(to_numbers=["+14155550101"], from_number="+14155550100").notify({"ti": ti, "run_id": run_id})
"""


def alert_at_once(folder: Path, envs: dict[str, dict[str, str]]) -> None:
    """
    Run :data:`CLAIMANT` in one process per task (``envs``: task id -> extra environment), all for one new run;
    they alert together once every interpreter has imported Airflow, and each must exit 0.
    """
    script = folder / "claimant.py"
    script.write_text(CLAIMANT)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    run_id = f"manual__{time.time_ns()}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), run_id, task, str(folder)], env={**os.environ, "PYTHONPATH": path, **extra}
        )
        for task, extra in envs.items()
    ]
    deadline = time.monotonic() + 90
    while not all((folder / f"{task}.ready").exists() for task in envs) and time.monotonic() < deadline:
        time.sleep(0.01)
    (folder / "go").touch()
    for proc in procs:
        assert proc.wait(timeout=90) == 0


def test_one_escalation_across_two_processes(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path, tmp_path: Path
) -> None:
    alert_at_once(tmp_path, {"extract": {}, "load": {}})

    assert created(ringcentral_conn_env) == [FIRST]
    claims = json.loads((isolated_token_cache / "alert-claims.json").read_text())["claims"]
    assert len(claims) == 1
    assert FIRST not in json.dumps(claims)  # keys are stored hashed


def test_an_unusable_state_folder_degrades_to_this_process_with_one_warning(
    ringcentral_conn_env: RingCentralEmulator,
    isolated_token_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = isolated_token_cache.parent / "a-file-not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR", str(blocker / "cache"))
    notifier = RingOutNotifier(to_numbers=[FIRST], from_number=FROM)
    run = make_context()

    with caplog.at_level("WARNING", logger=_dedup.__name__):
        notifier(run)
        notifier(run)  # still grouped, in this process
        notifier(make_context())  # another run: alerted

    assert created(ringcentral_conn_env) == [FIRST, FIRST]  # the alert is not lost
    grouping = [r for r in caplog.records if r.name == _dedup.__name__]
    assert len(grouping) == 1 and "this process only" in grouping[0].getMessage()


# --- fitting the callback's time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "per_number", "budget", "expected"),
    [
        pytest.param(3, 60.0, None, _budget.Plan(3, 60.0), id="no-limit"),
        pytest.param(2, 10.0, 50.0, _budget.Plan(2, 10.0), id="fits"),
        pytest.param(2, 60.0, 60.0, _budget.Plan(2, 25.5), id="shortened"),
        pytest.param(3, 60.0, 47.0, _budget.Plan(1, 41.0), id="only-the-first-fits"),
        pytest.param(2, 30.0, 20.0, _budget.Plan(1, 14.0), id="default-overtime-one-call-with-what-is-left"),
        pytest.param(2, 60.0, 8.0, _budget.Plan(0, 0.0), id="no-useful-ring-fits-nobody"),
        pytest.param(1, 5.0, 10.0, _budget.Plan(0, 0.0), id="shorter-than-asked-nobody"),
    ],
)
def test_escalation_plan(total: int, per_number: float, budget: float | None, expected: _budget.Plan) -> None:
    assert _budget.plan(total, per_number, budget) == expected


def test_outside_airflow_there_is_no_limit() -> None:
    assert _budget.callback_budget().seconds is None


def test_a_list_that_cannot_fit_warns_when_the_dag_is_parsed(
    monkeypatch: pytest.MonkeyPatch, logs: Callable[[], str]
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__TASK_SUCCESS_OVERTIME", "120")
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT", "120")
    RingOutNotifier(to_numbers=[FIRST, SECOND, THIRD], connect_to=BRIDGE)
    assert "an escalation of" not in logs()

    monkeypatch.setenv("AIRFLOW__CORE__TASK_SUCCESS_OVERTIME", "20")
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT", "50")
    RingOutNotifier(to_numbers=[FIRST, SECOND, THIRD], connect_to=BRIDGE)
    out = logs()
    assert "an escalation of 3 numbers needs about 72 s" in out
    assert "[core] task_success_overtime = 20 s / [dag_processor] dag_file_processor_timeout = 50 s" in out


def test_the_escalation_ends_inside_its_budget_and_cancels_the_last_call(
    ringcentral_conn_env: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch, logs: Callable[[], str]
) -> None:
    """The budget comes from the DAG processor or the worker (see the e2e test); here it is set directly."""
    emulator = ringcentral_conn_env
    emulator.script(None, CallScript(outcome=Outcome.NEVER_ANSWERS))
    monkeypatch.setattr(_budget, "callback_budget", lambda: _budget.Budget(12.0, "a test budget"))
    monkeypatch.setattr(_budget, "MIN_WAIT", 1.0)
    monkeypatch.setattr(_budget, "MIN_RING", 1.0)

    started = time.monotonic()
    acked(to_numbers=[FIRST, SECOND], per_number_timeout=60).notify(make_context())
    took = time.monotonic() - started

    assert rung_first(emulator) == [FIRST, SECOND]
    assert all(info.cancelled for info in emulator.sessions.values())
    assert took < 12.0 - _budget.END_MARGIN + 1.5
    assert "waits shortened to fit the callback's time" in logs()
