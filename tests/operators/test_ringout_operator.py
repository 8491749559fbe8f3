"""
RingOutOperator.execute() in process against the emulator (fast; the e2e tests run the same paths in Airflow).

Blocking and deferrable waits give the same results: the RingOut id once connected, RingOutFailedError when the
call fails, and on a timeout the call is cancelled and RingOutTimeoutError raised. The deferrable wait is run to
its end here: the TaskDeferred's trigger runs, and the operator resumes with its event.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_ringout._task_mixin import MAP_INDEX_TEMPLATE
from airflow_provider_ringout.exceptions import RingOutFailedError, RingOutTimeoutError
from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.ringout import RingOutTrigger
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_3_PLUS
from tests.task_context import TaskInstanceDouble, finish_deferral, task_context

pytestmark = pytest.mark.timeout(60)  # every wait here is a few seconds: a hang must fail fast

TO, FROM = "+14155550199", "+14155550100"
# Late enough that the deferrable operator's first status read still finds the call ringing, so it defers.
AFTER = 0.6


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator) -> RingCentralEmulator:
    return ringcentral_conn_env


def operator(**kwargs: Any) -> RingOutOperator:
    kwargs = {"task_id": "call", "to_number": TO, "from_number": FROM, "poll_interval": 0.1, **kwargs}
    return RingOutOperator(**kwargs)


def run(op: RingOutOperator, context: dict[str, Any]) -> Any:
    """Execute as Airflow would: a deferral is run through its trigger and resumed."""
    try:
        return op.execute(context)
    except TaskDeferred as deferred:
        assert op.deferrable, "a blocking operator never defers"
        return finish_deferral(op, deferred, context)


def only_call(emulator: RingCentralEmulator) -> str:
    (ringout_id,) = emulator.sessions
    return ringout_id


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_connected_call_returns_its_id(emulator: RingCentralEmulator, deferrable: bool) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=AFTER, talk=10))
    context = task_context()

    result = run(operator(deferrable=deferrable, wait_timeout=10), context)

    assert result == only_call(emulator)
    assert context["ti"].xcoms["ringout_id"] == result  # saved as soon as the call was placed
    assert emulator.count(kind="ring-out-create") == 1
    assert emulator.count(kind="ring-out-delete") == 0  # a connected call is never cancelled


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_failed_call_raises(emulator: RingCentralEmulator, deferrable: bool) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.BUSY, after=AFTER, linger=10))
    context = task_context()

    with pytest.raises(RingOutFailedError) as err:
        run(operator(deferrable=deferrable, wait_timeout=10), context)

    ringout_id = only_call(emulator)
    assert err.value.ringout_id == ringout_id
    assert "Busy" in str(err.value)
    assert context["ti"].xcoms["ringout_id"] == ringout_id
    assert emulator.count(kind="ring-out-create") == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_timeout_cancels_the_call_and_raises(emulator: RingCentralEmulator, deferrable: bool) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    started = time.monotonic()

    with pytest.raises(RingOutTimeoutError) as err:
        run(operator(deferrable=deferrable, wait_timeout=1), task_context())

    ringout_id = only_call(emulator)
    assert err.value.ringout_id == ringout_id
    assert emulator.count(kind="ring-out-delete") >= 1
    assert emulator.sessions[ringout_id].cancelled  # the phone stopped ringing
    assert emulator.session_status(ringout_id) is None
    assert emulator.count(kind="ring-out-create") == 1
    if not deferrable:
        assert time.monotonic() - started >= 1.0  # waited the whole wait_timeout first
        assert err.value.cancelled is True
        assert "cancelled and stopped" in str(err.value)


def test_deferral_hands_the_call_to_a_trigger(emulator: RingCentralEmulator) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    op = operator(deferrable=True, wait_timeout=300, poll_interval=3, ringcentral_conn_id="ringcentral_default")
    ti = TaskInstanceDouble()

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(task_context(ti))
    now = time.time()

    trigger = deferred.value.trigger
    ringout_id = only_call(emulator)
    assert isinstance(trigger, RingOutTrigger)
    assert trigger.ringout_id == ringout_id
    assert trigger.ringcentral_conn_id == "ringcentral_default"
    assert trigger.poll_interval == 3
    assert now < trigger.end_time <= now + 300  # an absolute deadline, within the operator's wait_timeout
    assert deferred.value.method_name == "execute_complete"
    assert ti.xcoms["ringout_id"] == ringout_id
    assert emulator.count(kind="ring-out-delete") == 0


def test_without_waiting_returns_the_id_at_once(emulator: RingCentralEmulator) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))

    result = operator(wait_for_connection=False).execute(task_context())

    assert result == only_call(emulator)
    assert emulator.count(kind="ring-out-get") == 0
    assert emulator.count(kind="ring-out-delete") == 0


def test_map_index_template_shows_the_masked_number() -> None:
    from airflow.sdk import DAG

    with DAG("mapped", schedule=None) as dag:
        op = operator()
    # Rendered as Airflow's task runner renders it after the task ran: the DAG's Jinja env, the task in context.
    label = dag.get_template_env().from_string(op.map_index_template).render({"task": op})
    assert label == "+1******0199"
    assert operator(map_index_template="{{ task.task_id }}").map_index_template == "{{ task.task_id }}"  # user wins


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.0's partial() does not read an operator's defaults")
def test_mapped_calls_take_the_default_map_index_template() -> None:
    from airflow.sdk import DAG

    with DAG("mapped", schedule=None):
        mapped = RingOutOperator.partial(task_id="call", from_number=FROM).expand(to_number=[TO, "+14155550111"])
        own = RingOutOperator.partial(task_id="own", map_index_template="{{ task.task_id }}").expand(to_number=[TO])
    assert mapped.map_index_template == MAP_INDEX_TEMPLATE  # what the task runner renders for each mapped call
    assert own.map_index_template == "{{ task.task_id }}"
