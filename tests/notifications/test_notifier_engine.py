"""The notifier on the shared escalation engine: a wait that fails cancels the call urgently and says what it did."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_ringout.notifications import _budget
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.testing import CallScript, Outcome
from tests.notifications.test_ringout_alert_design import BRIDGE, rung_first, session_of
from tests.notifications.test_ringout_notifier import FIRST, SECOND, logs

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs"]


def test_a_failing_wait_cancels_the_call_and_the_log_says_what_the_cancel_did(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env
    emulator.script_caller(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.script_caller(SECOND, CallScript(outcome=Outcome.ANSWERED, after=0.3, talk=5))
    emulator.inject("503", method="GET", path="ring-out-get")  # the first status read of the first call
    notifier = RingOutNotifier(
        to_numbers=[FIRST, SECOND], connect_to=BRIDGE, poll_interval=0.1, hook_params={"max_attempts": 1}
    )

    delivered = notifier._alert([FIRST, SECOND], notifier_budget(), 0.0)

    assert delivered is True
    assert rung_first(emulator) == [FIRST, SECOND]
    assert session_of(emulator, FIRST).cancelled
    out = logs()
    assert "its status could not be read" in out and "it was cancelled and stopped" in out


def test_alert_reports_whether_it_was_delivered(ringcentral_conn_env: RingCentralEmulator) -> None:
    ringcentral_conn_env.script_caller(FIRST, CallScript(outcome=Outcome.NEVER_ANSWERS))
    calls: list[int] = []
    notifier = RingOutNotifier(to_numbers=[FIRST], connect_to=BRIDGE, poll_interval=0.1, per_number_timeout=0.5)

    assert notifier._alert([FIRST], notifier_budget(), 0.0, before_each_call=lambda: calls.append(1)) is False
    assert calls == [1]  # called before the number was rung
    assert notifier._alert(["not a number"], notifier_budget(), 0.0) is False


def notifier_budget() -> _budget.Budget:
    return _budget.Budget(None)  # no callback clock: every number gets its full wait
