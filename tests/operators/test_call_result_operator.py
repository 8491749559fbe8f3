"""
RingOutOperator's ``ringout`` and ``call_result`` XComs, in process against the emulator (fast; the ``dags test``
runs in ``test_call_result_dags.py`` and the e2e one run the same paths in Airflow).

The emulator writes a call's Detailed record ``call_log_delay`` after the call ends; a test holds records back with
a long delay and releases them by setting it to 0 (scripted by events, not by the clock).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_ringout.call_result import PlacedRingOut
from airflow_provider_ringout.exceptions import (
    RingCentralConfigError,
    RingOutCallResultAmbiguousError,
    RingOutCallResultError,
    RingOutCallResultTimeoutError,
    RingOutFailedError,
)
from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.call_result import RingOutCallResultTrigger
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_3_PLUS
from tests.task_context import StateStoreDouble, finish_deferral, task_context

pytestmark = pytest.mark.timeout(60)

TO, FROM = "+14155550199", "+14155550100"


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch) -> RingCentralEmulator:
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__CALL_LOG_INTERVAL", "1")  # one shared call-log sync a second
    ringcentral_conn_env.call_log.delay = 0.2
    return ringcentral_conn_env


def operator(**kwargs: Any) -> RingOutOperator:
    kwargs = {
        "task_id": "call",
        "to_number": TO,
        "from_number": FROM,
        "poll_interval": 0.1,
        "result_poll_interval": 0.1,
        **kwargs,
    }
    return RingOutOperator(**kwargs)


def run(op: RingOutOperator, context: dict[str, Any]) -> Any:
    """Execute as Airflow would: every deferral is run through its trigger and resumed (the task may defer twice)."""
    deferred: TaskDeferred | None = None
    try:
        return op.execute(context)
    except TaskDeferred as exc:
        deferred = exc
    while True:
        try:
            return finish_deferral(op, deferred, context)
        except TaskDeferred as exc:
            deferred = exc


def only_call(emulator: RingCentralEmulator) -> str:
    (ringout_id,) = emulator.sessions
    return ringout_id


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"deferrable": True}, {"wait_for_connection": False}],
    ids=["blocking", "deferrable", "no_wait"],
)
def test_ringout_xcom_in_every_mode(emulator: RingCentralEmulator, kwargs: dict[str, Any]) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=10))
    context = task_context()
    before = datetime.now(UTC)

    result = run(operator(**kwargs), context)

    ringout = context["ti"].xcoms["ringout"]
    assert set(ringout) == {"id", "from_number", "to_number", "placed_at"}
    assert ringout["id"] == result == only_call(emulator)
    assert (ringout["from_number"], ringout["to_number"]) == (FROM, TO)
    placed_at = PlacedRingOut.from_dict(ringout).placed_at
    assert before <= placed_at <= datetime.now(UTC) and placed_at.utcoffset().total_seconds() == 0
    assert "call_result" not in context["ti"].xcoms  # only with wait_for_result
    assert emulator.count(kind="call-log") == 0


def test_ringout_xcom_uses_the_connection_default_from_number(
    emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(extra={"from_number": FROM}))
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0, talk=10))
    context = task_context()

    run(operator(from_number=None, wait_for_connection=False), context)

    assert context["ti"].xcoms["ringout"]["from_number"] == FROM  # the emulator connection's default


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_connected_call_pushes_its_result(emulator: RingCentralEmulator, deferrable: bool) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=0.5))
    context = task_context()

    returned = run(operator(deferrable=deferrable, wait_for_result=True, result_timeout=30), context)

    assert returned == only_call(emulator) == context["ti"].xcoms["ringout_id"]  # the return value is unchanged
    result = context["ti"].xcoms["call_result"]
    assert result["result"] == "Call connected" and result["answered_by"] == "person"
    assert [leg["leg_type"] for leg in result["legs"]] == ["RingOutWebToCaller", "RingOutWebToSubscriber"]
    assert result["telephony_session_id"]
    assert emulator.count(kind="ring-out-create") == 1


needs_task_state_store = pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="a retry reconnects to its call only with task_state_store (Airflow 3.3+)"
)


@needs_task_state_store
@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_retry_that_finds_its_call_connected_still_waits_for_the_result(
    emulator: RingCentralEmulator, deferrable: bool
) -> None:
    """A try whose call connected and that died before its result (here: it did not ask) is followed by a retry
    that reconnects (Airflow 3.3's task_state_store): it dials nobody, and pushes ringout and call_result."""
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=0.5))
    store = StateStoreDouble()
    first = {**task_context(), "task_state_store": store}
    run(operator(deferrable=deferrable), first)
    retry = {**task_context(), "task_state_store": store}

    returned = run(operator(deferrable=deferrable, wait_for_result=True, result_timeout=30), retry)

    assert returned == only_call(emulator) and emulator.count(kind="ring-out-create") == 1
    assert retry["ti"].xcoms["ringout"] == first["ti"].xcoms["ringout"]
    assert retry["ti"].xcoms["call_result"]["result"] == "Call connected"


@needs_task_state_store
def test_a_record_already_written_is_read_without_deferring(emulator: RingCentralEmulator) -> None:
    """Deferrable: one look before deferring, so a record already there never costs a deferral (nor a trigger
    that fires at once, racing the scheduler's handling of the deferral)."""
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=0.2))
    emulator.call_log.delay = 0
    store = StateStoreDouble()
    run(operator(), {**task_context(), "task_state_store": store})  # connected; this try asked for no result
    while not emulator.call_log.records():  # bounded by the test's timeout
        time.sleep(0.05)
    retry = {**task_context(), "task_state_store": store}

    returned = operator(deferrable=True, wait_for_result=True, result_timeout=30).execute(retry)  # no TaskDeferred

    assert returned == only_call(emulator)
    assert retry["ti"].xcoms["call_result"]["result"] == "Call connected"


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_busy_call_pushes_its_one_leg_result_then_fails(emulator: RingCentralEmulator, deferrable: bool) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.BUSY, after=0.3, linger=30))
    context = task_context()

    with pytest.raises(RingOutFailedError, match="Busy"):
        run(operator(deferrable=deferrable, wait_for_result=True, result_timeout=30), context)

    result = context["ti"].xcoms["call_result"]
    assert result["result"] == "Busy" and result["answered_by"] == "unknown"
    assert [leg["leg_type"] for leg in result["legs"]] == ["RingOutWebToCaller"]


def test_voicemail_on_the_first_leg(emulator: RingCentralEmulator) -> None:
    emulator.script_caller(FROM, CallScript(outcome=Outcome.VOICEMAIL, after=0.3, talk=0.5))
    context = task_context()

    run(operator(wait_for_result=True, result_timeout=30), context)

    result = context["ti"].xcoms["call_result"]
    assert result["result"] == "Voicemail" and result["answered_by"] == "voicemail"


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_record_that_never_appears_fails_with_why(emulator: RingCentralEmulator, deferrable: bool) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=0.3))
    emulator.call_log.delay = 3600  # RingCentral has not written it yet
    context = task_context()

    with pytest.raises(RingOutCallResultTimeoutError) as err:
        run(operator(deferrable=deferrable, wait_for_result=True, result_timeout=1), context)

    message = str(err.value)
    assert "did not appear within" in message
    assert "15-30 s after the call ends" in message and "ReadCallLog" in message
    assert err.value.ringout_id == only_call(emulator)
    assert "call_result" not in context["ti"].xcoms
    assert emulator.count(kind="ring-out-create") == 1  # and never retried: an AirflowFailException
    assert isinstance(err.value, RingOutCallResultError)


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_two_calls_between_the_same_numbers_are_ambiguous(emulator: RingCentralEmulator, deferrable: bool) -> None:
    # Both calls end as they are placed, so both records are due at the second call's first look-up: the
    # look-up never sees the first call's record alone (which it could take for its own).
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0, talk=0, linger=30))
    emulator.call_log.delay = 0
    first = task_context()
    run(operator(wait_for_connection=False), first)
    second = task_context()

    with pytest.raises(RingOutCallResultAmbiguousError) as err:
        run(operator(deferrable=deferrable, wait_for_result=True, result_timeout=30), second)

    assert "ambiguous" in str(err.value) and "same two numbers" in str(err.value)
    assert FROM not in str(err.value)  # numbers are masked
    assert "call_result" not in second["ti"].xcoms


def test_result_after_placing_without_waiting_for_the_connection(emulator: RingCentralEmulator) -> None:
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=0.3))
    context = task_context()

    run(operator(wait_for_connection=False, wait_for_result=True, result_timeout=30), context)

    assert context["ti"].xcoms["call_result"]["result"] == "Call connected"


def test_result_timeout_is_bounded_at_parse_time() -> None:
    with pytest.raises(RingCentralConfigError, match="MAX_RESULT_WAIT"):
        operator(wait_for_result=True, result_timeout=7 * 24 * 3600)


def test_trigger_serializes_and_restores() -> None:
    ringout = PlacedRingOut("1", FROM, TO, datetime(2026, 1, 1, tzinfo=UTC)).as_dict()
    trigger = RingOutCallResultTrigger(ringout=ringout, end_time=1.0, poll_interval=2, hook_params={"max_attempts": 2})
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_ringout.triggers.call_result.RingOutCallResultTrigger"
    assert RingOutCallResultTrigger(**kwargs).serialize() == (path, kwargs)
