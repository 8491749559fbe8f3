"""RingOutTrigger's deadline is wall-clock time (epoch seconds): one that has passed ends the wait at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.ringout import RingOutTrigger

TO, FROM = "+14155550199", "+14155550100"


def events_within(trigger: RingOutTrigger, seconds: float) -> list[Any]:
    """The trigger's events, failing after ``seconds`` instead of waiting on a deadline that never comes."""

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), seconds))


def test_a_passed_deadline_ends_the_wait_at_once(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    # As after a triggerer restart that came back late: the deadline passed while nobody watched.
    # Polls far apart: a trigger that waited one poll before noticing the deadline would fail the bound below.
    trigger = RingOutTrigger(ringout_id=ringout_id, end_time=time.time() - 1, poll_interval=60)

    (event,) = events_within(trigger, 10)

    assert event.payload["status"] == "timeout"
    assert event.payload["ringout_id"] == ringout_id


def test_a_connected_call_ends_the_wait_before_the_deadline(ringcentral_conn_env: RingCentralEmulator) -> None:
    emulator = ringcentral_conn_env
    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=10))
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    trigger = RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + 60, poll_interval=0.1)

    (event,) = events_within(trigger, 5)

    assert event.payload["status"] == "connected"
    assert event.payload["seen_connected"] is True
    assert emulator.count(kind="ring-out-delete") == 0
