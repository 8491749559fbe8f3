"""
The notifier tells the truth about its clock (issue 22, item 2), against the RingCentral emulator over loopback.

Placing a call counts against the callback's time: a 429 and its ``Retry-After``, a slow login, a login lock
held elsewhere. A number is never planned and then silently dropped: it is either called or named "not rung" in
the last line, with the callback's setting and the fix. The budget is given directly (``_alert``'s own input), so
nothing here depends on the machine's speed: the assertions are on what the emulator recorded and on the log.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ringout.exceptions import RingCentralWaitEndedError
from airflow_provider_ringout.hooks._transport import within_wait
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.notifications import _budget
from airflow_provider_ringout.notifications.ringout import RingOutNotifier
from airflow_provider_ringout.phone import mask_phone_number
from airflow_provider_ringout.testing import CallScript, Outcome
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_1_PLUS
from tests.notifications.test_ringout_alert_design import BRIDGE, rung_first
from tests.notifications.test_ringout_notifier import FIRST, SECOND, THIRD, logs

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_ringout.testing import RingCentralEmulator

__all__ = ["logs"]

OVERTIME = "[core] task_success_overtime"
FIX = f"use RingOutEscalationOperator (a task of its own, no callback clock), or raise {OVERTIME}."


def worker_budget(seconds: float) -> _budget.Budget:
    """What a task-level callback on a worker gets, with ``seconds`` as the setting."""
    return _budget.Budget(seconds, f"{OVERTIME} = {seconds:g} s")


def alert(numbers: list[str], budget: _budget.Budget, **kwargs: float) -> tuple[bool, float]:
    """Run the escalation of ``numbers`` inside ``budget``; returns whether it was delivered, and its wall time."""
    notifier = RingOutNotifier(to_numbers=numbers, connect_to=BRIDGE, poll_interval=0.1, **kwargs)  # type: ignore[arg-type]
    started = time.monotonic()
    delivered = notifier._alert(numbers, budget, started)
    return delivered, time.monotonic() - started


def final_line(out: str) -> str:
    [line] = [line for line in out.splitlines() if "RingOut alert FAILED" in line]
    return line


def assert_each_number_called_or_reported(out: str, emulator: RingCentralEmulator, numbers: list[str]) -> None:
    """The plan's promise: every number is either rung or named "not rung" in the last line; none is dropped."""
    line = final_line(out)
    for number in numbers:
        called = any(info.from_number == number for info in emulator.sessions.values())  # a call was placed
        reported = f"{mask_phone_number(number)}: not rung: no time was left" in line
        assert called != reported, (number, line)
    assert not any(number in out for number in numbers)  # masked


def test_a_429_whose_retry_after_outlasts_the_callback_places_nothing_and_names_who_was_not_rung(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    """Issue 22: a 25 s budget and one 429 (Retry-After) used to wait it out, ring, and return after 32.5 s."""
    emulator = ringcentral_conn_env
    emulator.script(None, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.inject("429", method="POST", path="ring-out-create", retry_after=20)

    delivered, _ = alert([FIRST, SECOND], worker_budget(25), per_number_timeout=30)

    assert delivered is False
    assert emulator.count("POST", "ring-out-create") == 1  # the refused one: never resent past the callback's end
    assert emulator.sessions == {}
    out = logs()
    assert "the callback's time only allows 1 of 2 number(s)" in out  # the plan
    line = final_line(out)
    assert "RingOut alert FAILED: nobody was rung." in line
    assert f"(1) {mask_phone_number(FIRST)}: not rung: no time was left (placing the call ran out of time" in line
    assert "Retry-After 20 s" in line
    assert f"(2) {mask_phone_number(SECOND)}: not rung: no time was left (the callback's time: " in line
    assert FIX in line
    assert "nobody was reached" not in out
    assert_each_number_called_or_reported(out, emulator, [FIRST, SECOND])


def test_a_429_whose_retry_after_fits_is_waited_out_and_shortens_the_ring(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 429's wait comes out of the ring's time: the call rings only what is left of its slot."""
    emulator = ringcentral_conn_env
    emulator.script(None, CallScript(outcome=Outcome.NEVER_ANSWERS))
    emulator.inject("429", method="POST", path="ring-out-create", retry_after=1)
    monkeypatch.setattr(_budget, "MIN_RING", 1.0)
    numbers = [FIRST, SECOND]

    delivered, _ = alert(numbers, worker_budget(12), per_number_timeout=30)  # plan: 1 of 2, up to 6 s

    assert delivered is False
    assert [r.status for r in emulator.requests if r.kind == "ring-out-create"] == [429, 200]
    assert [info.cancelled for info in emulator.sessions.values()] == [True]
    out = logs()
    assert "the callback's time only allows 1 of 2 number(s), up to 6 s each" in out
    line = final_line(out)
    rang = int(line.split(f"(1) {mask_phone_number(FIRST)}: not acknowledged within ", 1)[1].split(" s", 1)[0])
    assert rang <= 5  # at least the Retry-After second went to placing the call
    assert "enough for 1 of 2 number(s)" in line and FIX in line
    assert_each_number_called_or_reported(out, emulator, numbers)


def test_with_about_six_seconds_left_nobody_is_called_and_the_log_says_why(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    emulator = ringcentral_conn_env

    delivered, _ = alert([FIRST, SECOND], worker_budget(6), per_number_timeout=30)

    assert delivered is False
    assert emulator.count("POST", "ring-out-create") == 0
    out = logs()
    assert "the callback's time is too short to ring anyone" in out and "nobody is rung" in out
    assert "only allows" not in out  # no plan that names a number
    line = final_line(out)
    assert "RingOut alert FAILED: nobody was rung." in line
    assert f"were left of {OVERTIME} = 6 s, too little for any call" in line
    assert FIX in line
    assert "nobody was reached" not in out
    assert_each_number_called_or_reported(out, emulator, [FIRST, SECOND])


def test_a_planned_number_is_called_and_the_others_are_named_not_rung(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default overtime's shape (one number fits, rung for what is left), scaled down to seconds."""
    emulator = ringcentral_conn_env
    emulator.script(None, CallScript(outcome=Outcome.NEVER_ANSWERS))
    monkeypatch.setattr(_budget, "MIN_WAIT", 2.0)
    monkeypatch.setattr(_budget, "MIN_RING", 1.0)
    numbers = [FIRST, SECOND, THIRD]

    delivered, _ = alert(numbers, worker_budget(10), per_number_timeout=30)

    assert delivered is False
    assert rung_first(emulator) == [FIRST]
    assert all(info.cancelled for info in emulator.sessions.values())
    out = logs()
    assert "the callback's time only allows 1 of 3 number(s)" in out
    line = final_line(out)
    assert "RingOut alert FAILED: nobody was reached." in line
    assert f"(1) {mask_phone_number(FIRST)}: not acknowledged within " in line
    assert "it was cancelled and stopped" in line
    assert f"(2) {mask_phone_number(SECOND)}: not rung" in line and f"(3) {mask_phone_number(THIRD)}: not rung" in line
    assert FIX in line
    assert_each_number_called_or_reported(out, emulator, numbers)


def test_a_slow_login_counts_against_the_callbacks_time(
    ringcentral_conn_env: RingCentralEmulator, logs: Callable[[], str]
) -> None:
    """The login's answer is awaited only until the call must be sent; then the number is "not rung"."""
    emulator = ringcentral_conn_env
    emulator.inject("slow", path="token", delay=60)  # far longer than the callback's time

    delivered, _ = alert([FIRST, SECOND], worker_budget(20), per_number_timeout=30)

    assert delivered is False
    assert emulator.count("POST", "ring-out-create") == 0
    out = logs()
    line = final_line(out)
    assert f"(1) {mask_phone_number(FIRST)}: not rung: no time was left (placing the call ran out of time" in line
    assert_each_number_called_or_reported(out, emulator, [FIRST, SECOND])


def test_a_login_lock_held_elsewhere_is_waited_on_only_until_the_call_must_be_sent(
    ringcentral_conn_env: RingCentralEmulator,
) -> None:
    """Another process logging in holds the token lock: placing the call gives up at ``send_by``, places nothing."""
    emulator = ringcentral_conn_env
    hook = RingCentralHook()
    tokens = hook._tokens
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with tokens.state.locked(tokens.name):  # type: ignore[union-attr]
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        now = time.monotonic()
        with pytest.raises(RingCentralWaitEndedError, match="not sent"), within_wait(now + 30, send_by=now + 1):
            hook.place_ringout(to_number=BRIDGE, from_number=FIRST, play_prompt=True)
    finally:
        release.set()
        holder.join(10)
    assert emulator.count("POST", "ring-out-create") == 0


# --- the parse-time warning ------------------------------------------------------------------------------------


def test_the_parse_time_warning_is_given_once_per_process(
    monkeypatch: pytest.MonkeyPatch, logs: Callable[[], str]
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__TASK_SUCCESS_OVERTIME", "20")

    RingOutNotifier(to_numbers=[FIRST, SECOND, THIRD], connect_to=BRIDGE)
    RingOutNotifier(to_numbers=[FIRST, SECOND], connect_to=BRIDGE)  # another DAG of the file, or a second parse

    out = logs()
    assert out.count("RingOutNotifier: an escalation of") == 1
    assert "an escalation of 3 numbers" in out and "RingOutEscalationOperator" in out


@pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS, reason="Airflow builds notifiers with a context only for deadline alerts (3.1+)"
)
def test_a_notifier_airflow_builds_to_run_now_says_no_parse_warning(
    monkeypatch: pytest.MonkeyPatch, logs: Callable[[], str]
) -> None:
    """A deadline's callback is built in the triggerer with its context: that is no DAG parse, so no warning."""
    monkeypatch.setenv("AIRFLOW__CORE__TASK_SUCCESS_OVERTIME", "20")
    context = {"dag_run": {"dag_id": "late", "dag_run_id": "manual__1"}, "deadline": {"id": "1"}}
    RingOutNotifier(to_numbers=[FIRST, SECOND, THIRD], connect_to=BRIDGE, context=context)
    assert "an escalation of" not in logs()
    RingOutNotifier(to_numbers=[FIRST, SECOND, THIRD], connect_to=BRIDGE)  # the same list, parsed: warned
    assert "an escalation of 3 numbers" in logs()
