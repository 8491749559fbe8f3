"""
RingOutEscalationOperator in process against the emulator, blocking and deferrable, and its trigger's restarts.

The deferrable escalation is run as the triggerer and the task runner run it (``tests/task_context.py``): the
trigger's ``run()`` yields one event, then the operator resumes with it. A triggerer restart is the trigger's task
cancelled mid-call (as a stopping triggerer does) and a new trigger built from ``serialize()``'s kwargs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException, TaskDeferred

from airflow_provider_ringout.exceptions import RingCentralConfigError, RingOutFailedError
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.operators.escalation import RingOutEscalationOperator
from airflow_provider_ringout.state.progress import PROGRESS_FILE
from airflow_provider_ringout.testing import CallScript, Outcome
from airflow_provider_ringout.triggers.escalation import RingOutEscalationTrigger
from tests.notifications.test_ringout_alert_design import BRIDGE, rung_first, session_of
from tests.notifications.test_ringout_notifier import FIRST, SECOND, THIRD, logs, make_context
from tests.task_context import finish_deferral

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs"]

pytestmark = pytest.mark.timeout(90)


def operator(**kwargs: Any) -> RingOutEscalationOperator:
    kwargs = {
        "task_id": "escalate",
        "to_numbers": [FIRST, SECOND, THIRD],
        "connect_to": BRIDGE,
        "per_number_timeout": 1.5,
        "poll_interval": 0.1,
        **kwargs,
    }
    return RingOutEscalationOperator(**kwargs)


def run(op: RingOutEscalationOperator, context: dict[str, Any]) -> Any:
    """Execute as Airflow would: a deferral is run through its trigger and resumed."""
    try:
        return op.execute(context)
    except TaskDeferred as deferred:
        assert op.deferrable, "a blocking escalation never defers"
        assert isinstance(deferred.trigger, RingOutEscalationTrigger)
        return finish_deferral(op, deferred, context, limit=60)


def voicemail_no_answer_acknowledges(emulator: RingCentralEmulator) -> None:
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.VOICEMAIL, after=0.2))
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script_caller(THIRD, CallScript(outcome=Outcome.ANSWERED, after=0.4, talk=5))


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_voicemail_then_no_answer_then_the_third_acknowledges(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str], deferrable: bool
) -> None:
    emulator = ringcentral_conn_env
    voicemail_no_answer_acknowledges(emulator)

    result = run(operator(deferrable=deferrable), make_context())

    assert rung_first(emulator) == [FIRST, SECOND, THIRD]
    assert result["acknowledged_by"] == THIRD and result["round"] == 1
    assert [c["number"] for c in result["calls"]] == [FIRST, SECOND, THIRD]
    assert [c["result"] for c in result["calls"]] == ["not_pressed", "no_answer", "acknowledged"]
    assert "nobody pressed 1 (a voicemail?)" in result["calls"][0]["outcome"]
    assert "the cancel could NOT stop it" in result["calls"][0]["outcome"]  # honest: the voicemail goes on
    assert "it was cancelled and stopped" in result["calls"][1]["outcome"]
    assert session_of(emulator, SECOND).cancelled and not session_of(emulator, THIRD).cancelled
    json.dumps(result)  # XCom-friendly
    out = logs()
    assert "acknowledged (pressed 1)" in out
    assert all(number not in out for number in (FIRST, SECOND, THIRD))  # masked in the logs


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_two_rounds_nobody_acknowledges_rings_the_list_twice_and_fails_listing_outcomes(
    ringcentral_conn_env: RingCentralEmulator, deferrable: bool
) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.BUSY, after=0.2))

    with pytest.raises(RingOutFailedError) as failed:
        run(operator(to_numbers=[FIRST, SECOND], rounds=2, per_number_timeout=1, deferrable=deferrable), make_context())

    assert rung_first(emulator) == [FIRST, SECOND, FIRST, SECOND]
    message = str(failed.value)
    assert "nobody acknowledged after 2 rounds" in message
    assert message.count("not acknowledged within 1 s") == 2 and message.count("did not go through") == 2
    assert "round 1:" in message and "round 2:" in message
    assert FIRST not in message and SECOND not in message  # masked
    assert all(info.cancelled for info in emulator.sessions.values() if info.from_number == FIRST)


def test_a_wait_that_fails_cancels_the_call_urgently_and_says_what_the_cancel_did(
    ringcentral_conn_env: RingCentralEmulator,
) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=5))
    emulator.inject("503", method="GET", path="ring-out-get")  # the first status read of the first call

    result = run(operator(to_numbers=[FIRST, SECOND], hook_params={"max_attempts": 1}), make_context())

    first = result["calls"][0]
    assert first["result"] == "wait_failed"
    assert "its status could not be read" in first["outcome"] and "it was cancelled and stopped" in first["outcome"]
    assert session_of(emulator, FIRST).cancelled
    assert result["acknowledged_by"] == SECOND


def test_a_notifier_and_an_escalation_of_one_incident_escalate_once(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.ANSWERED, after=0.2, talk=5))
    context = make_context()
    RingOutNotifier(to_numbers=[FIRST, SECOND], connect_to=BRIDGE, poll_interval=0.1).notify(context)

    with pytest.raises(AirflowSkipException, match="was delivered within dedup_window"):
        operator(to_numbers=[FIRST, SECOND]).execute(context)
    assert rung_first(emulator) == [FIRST]


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_an_escalation_nobody_acknowledged_does_not_silence_the_next_try(
    ringcentral_conn_env: RingCentralEmulator, deferrable: bool
) -> None:
    """Its claim is released when nobody acknowledged, so the task's retry (same incident) rings the list again;
    one that was acknowledged keeps it, so a later alert of the incident is skipped."""
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    context = make_context()
    for try_number in (1, 2):  # a try, then Airflow's retry of it
        context["ti"].try_number = try_number
        with pytest.raises(RingOutFailedError):
            run(operator(to_numbers=[FIRST], per_number_timeout=0.5, deferrable=deferrable), context)
    assert rung_first(emulator) == [FIRST, FIRST]

    emulator.script_caller(FIRST, CallScript(outcome=Outcome.ANSWERED, after=0.2, talk=5))
    context["ti"].try_number = 3
    assert run(operator(to_numbers=[FIRST], deferrable=deferrable), context)["acknowledged_by"] == FIRST
    context["ti"].try_number = 4
    with pytest.raises(AirflowSkipException, match="was delivered within dedup_window"):
        run(operator(to_numbers=[FIRST], deferrable=deferrable), context)
    assert rung_first(emulator) == [FIRST, FIRST, FIRST]


def test_settings_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(RingCentralConfigError, match="rounds"):
        operator(rounds=0)
    with pytest.raises(RingCentralConfigError, match="per_number_timeout"):
        operator(per_number_timeout=0)
    with pytest.raises(RingCentralConfigError, match="hook_params"):
        operator(hook_params={"retries": 3})
    assert {"to_numbers", "connect_to", "dedup_key"} <= set(RingOutEscalationOperator.template_fields)


def deferred_trigger(context: dict[str, Any], **kwargs: Any) -> RingOutEscalationTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        operator(deferrable=True, **kwargs).execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, RingOutEscalationTrigger)
    return trigger


# --- a restarted trigger: stop it while the second number rings, rebuild it, let it finish --------------------


def in_file(folder: Path, key: str) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):  # not written yet, or caught mid-write
        saved = json.loads((folder / f"{PROGRESS_FILE}.json").read_text()).get(key)
        return saved if isinstance(saved, dict) else None
    return None


def second_call_saved(saved: dict[str, Any] | None) -> bool:
    """The saved progress has the second call's RingOut id (a stop before that is another test's case)."""
    flight = (saved or {}).get("in_flight")
    return bool(flight and flight.get("number") == 1 and flight.get("ringout_id"))


def stop_while_the_second_rings(trigger: RingOutEscalationTrigger, saved: Callable[[], dict[str, Any] | None]) -> None:
    async def stop() -> None:
        task = asyncio.ensure_future(trigger.run().__anext__())
        while not second_call_saved(saved()):
            await asyncio.sleep(0.02)
        task.cancel()  # the triggerer stops mid-call
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(stop(), 30))


def finish(kwargs: dict[str, Any]) -> Any:
    restarted = RingOutEscalationTrigger(**kwargs)  # as a restarted triggerer rebuilds it

    async def events() -> list[Any]:
        return [event async for event in restarted.run()]

    (event,) = asyncio.run(asyncio.wait_for(events(), 30))
    return event


def assert_resumed(emulator: RingCentralEmulator, event: Any) -> None:
    assert event.payload["status"] == "done"
    assert rung_first(emulator) == [FIRST, SECOND, THIRD]  # nobody twice
    assert session_of(emulator, SECOND).cancelled  # the call in flight was finished and cancelled, not left
    calls = event.payload["progress"]["calls"]
    assert [(c["number"], c["outcome"]) for c in calls] == [
        (FIRST, "not_pressed"),
        (SECOND, "no_answer"),
        (THIRD, "acknowledged"),
    ]


def test_a_restarted_trigger_rings_nobody_twice_and_leaves_nothing_ringing(
    ringcentral_conn_env: RingCentralEmulator, isolated_token_cache: Path
) -> None:
    emulator = ringcentral_conn_env
    voicemail_no_answer_acknowledges(emulator)
    trigger = deferred_trigger(make_context(), per_number_timeout=3)
    _, kwargs = trigger.serialize()
    json.dumps(kwargs)

    stop_while_the_second_rings(trigger, lambda: in_file(isolated_token_cache, trigger.progress_key))
    saved = json.loads((isolated_token_cache / f"{PROGRESS_FILE}.json").read_text())
    assert not any(number in json.dumps(saved) for number in (FIRST, SECOND, THIRD))  # positions, not numbers
    assert_resumed(emulator, finish(kwargs))


def test_a_trigger_restarted_during_a_post_never_rings_that_number_again(
    ringcentral_conn_env: RingCentralEmulator,
) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=5))
    context = make_context()
    trigger = deferred_trigger(context, to_numbers=[FIRST, SECOND])
    _, kwargs = trigger.serialize()
    # What a trigger saves just before its first POST, had the triggerer stopped before the answer came.
    trigger.progress.in_flight = {"number": FIRST}
    trigger._save(trigger._hook()._state)

    restarted = RingOutEscalationTrigger(**kwargs)
    op = operator(to_numbers=[FIRST, SECOND], deferrable=True)
    result = finish_deferral(
        op, type("Deferred", (), {"trigger": restarted, "kwargs": {}, "method_name": "execute_complete"}), context
    )

    assert rung_first(emulator) == [SECOND]
    assert result["calls"][0]["result"] == "unconfirmed" and "may have connected" in result["calls"][0]["outcome"]
    assert result["acknowledged_by"] == SECOND


def test_the_trigger_round_trips_and_its_event_is_decoded_once() -> None:
    from airflow_provider_ringout.exceptions import RingOutError
    from airflow_provider_ringout.triggers.escalation import EscalationEvent

    trigger = RingOutEscalationTrigger(
        numbers=[FIRST, SECOND], connect_to=BRIDGE, per_number_timeout=5, rounds=2, progress_key="k", poll_interval=1
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ringout.triggers.escalation.RingOutEscalationTrigger"
    assert RingOutEscalationTrigger(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)

    with pytest.raises(RingOutError, match="not a RingOut escalation event"):
        EscalationEvent.decode({"status": "connected", "ringout_id": "1"})
    failed = EscalationEvent(trigger.progress, "OSError: boom").payload()
    with pytest.raises(RingOutError, match=r"stopped in the triggerer: OSError: boom\. Each call so far: no call"):
        EscalationEvent.decode(failed)
    assert EscalationEvent.decode(EscalationEvent(trigger.progress).payload()).progress == trigger.progress
