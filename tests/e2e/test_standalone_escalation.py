"""
The deferrable RingOutEscalationOperator under real Airflow services (api-server, scheduler, DAG processor,
triggerer; ``tests/e2e/standalone.py``): a failed task followed by an escalation with ``trigger_rule="one_failed"``.

A triggerer SIGTERMed while the second engineer rings and started again: the new triggerer resumes the escalation
from the progress the trigger saved, so nobody is rung twice and the call that was ringing is cancelled; the third
engineer acknowledges and the task succeeds. ``rounds=2`` with nobody acknowledging rings the list twice and fails.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.e2e.dags_escalation.ringout_escalation_services import SCENARIOS
from tests.e2e.standalone import AirflowServices, services_on_emulator
from tests.e2e.test_standalone_deferred import TERMINAL, trigger

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAGS_FOLDER = Path(__file__).resolve().parent / "dags_escalation"
RESTART_NUMBERS = SCENARIOS["escalation_restart"][0]
ROUNDS_NUMBERS = SCENARIOS["escalation_two_rounds"][0]


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    rc = RingCentralEmulator(host="127.0.0.1", default_script=CallScript(outcome=Outcome.NEVER_ANSWERS)).start()
    first, second, third = RESTART_NUMBERS
    rc.script_caller(first, CallScript(outcome=Outcome.VOICEMAIL, after=1))
    rc.script_caller(second, CallScript(outcome=Outcome.NEVER_ANSWERS))
    rc.script_caller(third, CallScript(outcome=Outcome.ANSWERED, after=2, talk=300, linger=30))
    for number in ROUNDS_NUMBERS:
        rc.script_caller(number, CallScript(outcome=Outcome.NEVER_ANSWERS))
    try:
        yield rc
    finally:
        rc.stop()


@pytest.fixture(scope="module")
def services(emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    home = tmp_path_factory.mktemp("airflow-escalation")
    with services_on_emulator(emulator, home, DAGS_FOLDER, list(SCENARIOS)) as airflow:
        yield airflow


def rung_first(emulator: RingCentralEmulator, numbers: list[str]) -> list[str]:
    """The engineers rung (the RingOut ``from``), in order, among ``numbers``."""
    bodies = [r.json for r in emulator.requests if r.kind == "ring-out-create" and r.json]
    return [b["from"]["phoneNumber"] for b in bodies if b["from"]["phoneNumber"] in numbers]


def watched(emulator: RingCentralEmulator, caller: str) -> bool:
    """Whether the call to ``caller`` has had a status read (the trigger saves a call's id before reading it)."""
    ids = {rid for rid, info in emulator.sessions.items() if info.from_number == caller}
    return any(r.kind == "ring-out-get" and r.path.rsplit("/", 1)[-1] in ids for r in emulator.requests)


def test_triggerer_restart_mid_escalation_rings_nobody_twice_and_the_third_acknowledges(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    first, second, third = RESTART_NUMBERS
    run = trigger(services, "escalation_restart")
    run.task_id = "escalate"
    run.wait({"deferred"}, timeout=180)
    # Read once: the trigger saved the call's id before its first status read, so the restart can finish it.
    services.wait_for("the second engineer's call to be watched", lambda: watched(emulator, second), timeout=60)
    old_job = services.running_triggerer_job()
    services.stop("triggerer", signal.SIGTERM, timeout=40)
    services.start("triggerer")
    services.wait_new_triggerer(old_job)

    final = run.wait(TERMINAL, timeout=180)

    assert final == "success", f"{run.describe()}\n{run.task_log()[-4000:]}\n{run.trigger_logs()[-4000:]}"
    assert rung_first(emulator, RESTART_NUMBERS) == [first, second, third]  # nobody twice
    sessions = {info.from_number: info for info in emulator.sessions.values() if info.from_number in RESTART_NUMBERS}
    assert sessions[second].cancelled  # the call ringing across the restart was cancelled, not left
    assert not sessions[third].cancelled
    assert run.xcom()["acknowledged_by"] == third
    assert "resuming after a triggerer restart" in run.trigger_logs()


def test_two_rounds_nobody_acknowledges_rings_the_list_twice_and_fails(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    run = trigger(services, "escalation_two_rounds")
    run.task_id = "escalate"

    final = run.wait(TERMINAL, timeout=180)

    assert final == "failed", run.describe()
    assert rung_first(emulator, ROUNDS_NUMBERS) == ROUNDS_NUMBERS * 2
    assert all(info.cancelled for info in emulator.sessions.values() if info.from_number in ROUNDS_NUMBERS)
    assert "nobody acknowledged after 2 rounds" in run.task_log()
