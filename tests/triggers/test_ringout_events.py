"""
The watch -> trigger -> event hand-off: one constructor of the trigger from a watch, one decoder of its events.

Events are decoded the same way by the operator and the sensor; an event fired by an earlier release (before
``cancel`` existed) still resumes the task, so a task deferred across an upgrade survives it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_ringout.exceptions import RingOutError, RingOutFailedError, RingOutTimeoutError
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutStatus, RingOutWatch
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.ringout import RingOutEvent, RingOutEventKind, RingOutTrigger
from tests.task_context import task_context

TO, FROM = "+14155550199", "+14155550100"
PENDING = RingOutStatus(RingOutState.PENDING, "InProgress", "Success", "InProgress")


def watch(*, seen_connected: bool = False, last: RingOutStatus | None = PENDING) -> RingOutWatch:
    result = RingOutWatch("4711", seen_connected=seen_connected)
    result.last = last
    return result


def place(emulator: RingCentralEmulator, outcome: Outcome) -> str:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    emulator.script(TO, CallScript(outcome=outcome, after=0.3, talk=5, linger=5))
    return RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]


@pytest.mark.parametrize("kind", list(RingOutEventKind))
@pytest.mark.parametrize("cancel", [None, *CancelOutcome])
def test_every_event_decodes_to_what_was_fired(kind: RingOutEventKind, cancel: CancelOutcome | None) -> None:
    fired = RingOutEvent(kind, watch(seen_connected=True), "some words", cancel)
    payload = json.loads(json.dumps(fired.payload()))  # stored as JSON between the triggerer and the worker

    decoded = RingOutEvent.decode(payload)

    assert (decoded.kind, decoded.message, decoded.cancel) == (kind, "some words", cancel)
    assert decoded.watch.to_dict() == fired.watch.to_dict()


def test_the_payload_keeps_the_documented_keys() -> None:
    payload = RingOutEvent(RingOutEventKind.TIMEOUT, watch(), "late", CancelOutcome.STOPPED).payload()
    assert payload == {
        "status": "timeout",
        "ringout_id": "4711",
        "ringout_status": PENDING.as_dict(),
        "seen_connected": False,
        "message": "late",
        "cancel": "stopped",
    }


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        (RingOutEventKind.CONNECTED, RingOutState.CONNECTED),
        (RingOutEventKind.FAILED, RingOutState.FAILED),
        (RingOutEventKind.UNKNOWN, RingOutState.UNKNOWN),
        (RingOutEventKind.TIMEOUT, None),
        (RingOutEventKind.ERROR, None),
    ],
)
def test_kinds_name_the_final_state_they_report(kind: RingOutEventKind, state: RingOutState | None) -> None:
    assert kind.state is state


# What the first release's trigger fired: no ``cancel`` (nor anything added since).
FIRST_RELEASE_EVENT = {
    "status": "timeout",
    "ringout_id": "4711",
    "ringout_status": {"state": "pending", "callStatus": "InProgress", "callerStatus": "InProgress"},
    "seen_connected": False,
    "message": "RingOut 4711 did not connect in time.",
}


def test_an_event_from_an_earlier_release_decodes() -> None:
    decoded = RingOutEvent.decode(FIRST_RELEASE_EVENT)
    assert decoded.kind is RingOutEventKind.TIMEOUT
    assert decoded.cancel is None  # the old trigger never cancelled: the task does
    assert decoded.watch.ringout_id == "4711"
    assert decoded.watch.last == RingOutStatus(RingOutState.PENDING, "InProgress", "InProgress", None)


def test_a_bare_event_decodes_with_the_old_meanings() -> None:
    decoded = RingOutEvent.decode({"status": "connected", "ringout_id": 4711})
    assert decoded.kind is RingOutEventKind.CONNECTED
    assert decoded.watch.to_dict() == {"ringout_id": "4711", "seen_connected": False, "last_status": None}
    assert decoded.cancel is None


def test_an_unknown_status_or_cancel_is_read_safely() -> None:
    decoded = RingOutEvent.decode({**FIRST_RELEASE_EVENT, "status": "exploded", "cancel": "teleported"})
    assert decoded.kind is RingOutEventKind.ERROR  # the task fails with the event's message, it does not crash
    assert decoded.message == "unrecognised event status 'exploded': RingOut 4711 did not connect in time."
    assert decoded.cancel is None  # unreadable: the task cancels itself (a repeat is harmless)


@pytest.mark.parametrize("event", [None, "timeout", {"status": "timeout"}, {"ringout_id": ""}])
def test_what_is_not_a_ringout_event_is_refused_clearly(event: Any) -> None:
    with pytest.raises(RingOutError, match="not a RingOut trigger event"):
        RingOutEvent.decode(event)


@pytest.mark.parametrize("seen_connected", [False, True])
@pytest.mark.parametrize("last", [None, PENDING])
def test_from_watch_carries_the_watch_and_the_settings(seen_connected: bool, last: RingOutStatus | None) -> None:
    source = watch(seen_connected=seen_connected, last=last)
    trigger = RingOutTrigger.from_watch(
        source,
        end_time=1234.5,
        poll_interval=3,
        ringcentral_conn_id="rc",
        cancel_on_kill=False,
        cancel_on_timeout=True,
        hook_params={"max_attempts": 2},
    )
    _, kwargs = trigger.serialize()
    assert kwargs == {
        **source.to_dict(),
        "end_time": 1234.5,
        "poll_interval": 3.0,
        "ringcentral_conn_id": "rc",
        "cancel_on_kill": False,
        "cancel_on_timeout": True,
        "hook_params": {"max_attempts": 2},
    }
    rebuilt = RingOutTrigger(**json.loads(json.dumps(kwargs)))  # as the triggerer loads it
    assert rebuilt.watch.to_dict() == source.to_dict()
    assert rebuilt.serialize() == trigger.serialize()


def test_hook_params_reach_the_triggers_hook_and_survive_serialization() -> None:
    params = {"max_attempts": 2, "backoff_factor": 0.5, "token_cache_dir": "/tmp/rc-cache"}
    _, kwargs = RingOutTrigger(ringout_id="1", end_time=1.0, hook_params=params).serialize()
    hook = RingOutTrigger(**kwargs)._hook()
    assert (hook.max_attempts, hook.backoff_factor, str(hook._token_cache_dir)) == (2, 0.5, "/tmp/rc-cache")


def test_a_trigger_without_hook_params_serializes_as_before() -> None:
    """No new key when unused: a triggerer still running the previous release can load the trigger."""
    _, kwargs = RingOutTrigger(ringout_id="1", end_time=1.0).serialize()
    assert "hook_params" not in kwargs


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("max_attempts", "expected"), [(1, "error"), (2, "timeout")])
def test_the_triggers_hook_retries_as_hook_params_say(
    ringcentral_conn_env: RingCentralEmulator, max_attempts: int, expected: str
) -> None:
    ringout_id = place(ringcentral_conn_env, Outcome.NEVER_ANSWERS)
    ringcentral_conn_env.inject("503", path="ring-out-get")
    trigger = RingOutTrigger(
        ringout_id=ringout_id, end_time=time.time() + 0.5, poll_interval=0.2, hook_params={"max_attempts": max_attempts}
    )

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event.payload["status"] == expected


@pytest.mark.timeout(30)
def test_the_operator_resumes_with_an_event_from_an_earlier_release(ringcentral_conn_env: RingCentralEmulator) -> None:
    """A timeout from the first release's trigger (which never cancelled): the resuming operator cancels once."""
    from airflow_provider_ringout.operators.ringout import RingOutOperator

    ringout_id = place(ringcentral_conn_env, Outcome.NEVER_ANSWERS)
    event = {**FIRST_RELEASE_EVENT, "ringout_id": ringout_id}
    op = RingOutOperator(task_id="call", to_number=TO, from_number=FROM)

    with pytest.raises(RingOutTimeoutError, match="it was cancelled and stopped") as err:
        op.execute_complete(task_context(), event, waited=2)

    assert err.value.cancelled is True
    assert ringcentral_conn_env.count(kind="ring-out-delete") == 1
    busy = {"state": "failed", "callStatus": "Busy", "callerStatus": "Success", "calleeStatus": "Busy"}
    with pytest.raises(RingOutFailedError, match="Busy"):
        op.execute_complete(task_context(), {**event, "status": "failed", "ringout_status": busy})
