"""
The no-redial hold is released only by a clear of this task instance, never by a retry or another task's clear.

Fast (no Airflow processes): the operator resumes with the task_state_store of an earlier try that held its call.
Airflow's own clear (``clear_task_instances``) raises the cleared task instance's ``max_tries`` to ``try_number +
retries``, and raises the run's ``clear_number`` whichever task was cleared; a retry changes neither. The context
here carries those two numbers as the task runner hands them over (``ti.max_tries``, ``dag_run.clear_number``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ringout.exceptions import RingOutOutcomeUnknownError
from airflow_provider_ringout.operators.ringout import HOLD_KEY, RingOutOperator
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.operators.test_failed_wait import StateStoreDouble
from tests.task_context import TaskInstanceDouble, task_context

pytestmark = pytest.mark.timeout(60)

TO, FROM = "+14155550199", "+14155550100"


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator) -> RingCentralEmulator:
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.1, talk=10))
    return ringcentral_conn_env


def held_store() -> StateStoreDouble:
    """What an earlier try (try 1, retries=1, run never cleared) left: the answer to its POST was lost."""
    store = StateStoreDouble()
    store.set(
        HOLD_KEY, {"why": "the answer to the POST was lost", "ringout_id": None, "max_tries": 1, "clear_number": 0}
    )
    return store


def resumed(store: StateStoreDouble, *, try_number: int, max_tries: int, clear_number: int) -> dict[str, Any]:
    ti = TaskInstanceDouble()
    ti.try_number, ti.max_tries = try_number, max_tries  # type: ignore[attr-defined]
    context = task_context(ti)
    context["task_state_store"] = store
    context["dag_run"] = SimpleNamespace(clear_number=clear_number)
    return context


def posts(emulator: RingCentralEmulator) -> int:
    return emulator.count(kind="ring-out-create")


def operator() -> RingOutOperator:
    return RingOutOperator(task_id="call", to_number=TO, from_number=FROM, poll_interval=0.1, retries=1)


def test_a_retry_of_a_held_task_does_not_dial(emulator: RingCentralEmulator) -> None:
    with pytest.raises(RingOutOutcomeUnknownError, match="Clear the task"):
        operator().execute(resumed(held_store(), try_number=2, max_tries=1, clear_number=0))
    assert posts(emulator) == 0


def test_clearing_another_task_of_the_run_leaves_the_hold(emulator: RingCentralEmulator) -> None:
    # Another task was cleared: the run's clear_number rose, this task instance's max_tries did not.
    with pytest.raises(RingOutOutcomeUnknownError, match="Clear the task"):
        operator().execute(resumed(held_store(), try_number=2, max_tries=1, clear_number=1))
    assert posts(emulator) == 0


def test_clearing_this_task_releases_the_hold_and_dials(emulator: RingCentralEmulator) -> None:
    store = held_store()
    # This task instance was cleared after try 1: max_tries = try_number (1) + retries (1); the run's count rose.
    ringout_id = operator().execute(resumed(store, try_number=2, max_tries=2, clear_number=1))

    assert posts(emulator) == 1
    assert ringout_id in emulator.sessions
    assert HOLD_KEY not in store
