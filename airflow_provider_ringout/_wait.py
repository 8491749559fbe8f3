"""
How a wait on a call ends, written once for the operator, the sensor (poke, reschedule, deferrable) and the trigger.

- :class:`RingOutEvent`: the trigger's one event, the only code that knows its JSON (fired by the trigger,
  decoded by the task that resumes).
- :func:`deadlines` and :func:`deadline_margin`: when the trigger gives up, and when Airflow's own timeout for the
  deferral comes (a margin later, so the trigger, not Airflow, ends the wait and stops the call).
- :func:`final_error`: the error a failed call, or one whose outcome is unknown, ends the wait with.
- :func:`timeout_message`: the words of a timeout, with what the cancel achieved (``CancelOutcome.describe``).
- :func:`stop_if_pending`: the stop after Airflow's own timeout beat the trigger (``TRIGGER_FAIL``).
- :func:`fire_after` and :func:`no_sooner`: a trigger fires no sooner than ``[ringcentral] trigger_fire_delay``
  after the deferral (Airflow can fail a task whose trigger fires before the scheduler handled its deferral).

It imports only ``status`` and ``exceptions``: the tasks (``_task_mixin``) and the trigger (``triggers/ringout``)
both build on it, and neither imports the other for it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingOutError, RingOutFailedError, RingOutOutcomeUnknownError
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutWatch

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

# The trigger gives up this long (plus one poll interval) before Airflow's own deadline for the deferred task,
# so that it, not Airflow, ends the wait and stops the call: covers a status read in flight at the deadline, the
# DELETE and its confirming read, and a triggerer whose event loop runs a few seconds late.
DEADLINE_SLACK = 5.0
# The ``next_method`` Airflow resumes a deferred task with to fail it: its own deadline passed before the
# trigger fired (a triggerer down or far behind), or the trigger crashed. ``execute_complete`` never runs then.
TRIGGER_FAIL = "__fail__"
# A trigger fires no sooner than this after the deferral. The worker that deferred reports "success" to the
# executor as it exits; a trigger event handled before that report requeues the task, and Airflow's scheduler then
# takes the late report for a task killed externally and fails it (apache/airflow#66374, #67287, #72716). On
# Airflow 3.0 such a failure is retried, and a retry there places the call again. Seen here: the report handled
# 5.3 s after the deferral on a loaded 2-core machine; so twice that.
TRIGGER_FIRE_DELAY = 10.0


def deadline_margin(poll_interval: float, wait: float) -> float:
    """
    Seconds between the trigger's deadline and Airflow's own one: a poll plus :data:`DEADLINE_SLACK`.

    :param poll_interval: seconds between status reads.
    :param wait: the whole wait the margin is cut from; the margin never takes more than a quarter of it, so a
        short wait is not cut to nothing.
    :return: the margin in seconds.
    """
    return min(float(poll_interval) + DEADLINE_SLACK, max(float(wait), 0.0) / 4)


def deadlines(now: float, *, wait: float, poll_interval: float, hard_end: float | None = None) -> tuple[float, float]:
    """
    When the trigger gives up (epoch seconds), and Airflow's own timeout for the deferral (seconds from ``now``).

    Airflow's deadline is ``wait`` plus a margin, or ``hard_end`` when that comes first (the end of the
    operator's ``execution_timeout``; the sensor's ``timeout``); the trigger's is ``wait``, or a margin before
    ``hard_end``. Airflow is never given less than a second (or the whole ``wait``, if shorter).

    :param now: the time of deferring (epoch seconds).
    :param wait: how long the task waits for the call (seconds).
    :param poll_interval: seconds between status reads.
    :param hard_end: when Airflow must fail the task at the latest (epoch seconds), or None.
    :return: ``(end_time, airflow_timeout)``.
    """
    end_time = now + wait
    airflow_end = end_time + deadline_margin(poll_interval, wait)
    if hard_end is not None and hard_end < airflow_end:
        airflow_end = max(hard_end, now + min(1.0, wait))
        end_time = min(end_time, airflow_end - deadline_margin(poll_interval, airflow_end - now))
    return end_time, airflow_end - now


def fire_after(now: float, end_time: float) -> float | None:
    """
    When a trigger deferred to at ``now`` may fire at the earliest: ``[ringcentral] trigger_fire_delay`` later
    (default :data:`TRIGGER_FIRE_DELAY`), but never after its own deadline ``end_time`` (its timeout must still
    come before Airflow's); None when the delay is 0.
    """
    from airflow.providers.common.compat.sdk import conf

    delay = conf.getfloat("ringcentral", "trigger_fire_delay", fallback=TRIGGER_FIRE_DELAY)
    return min(now + delay, end_time) if delay > 0 else None


async def no_sooner(events: AsyncIterator[Any], not_before: float | None) -> AsyncIterator[Any]:
    """Yield ``events`` (a trigger's), holding each until ``not_before`` (epoch seconds) if it comes earlier."""
    async for event in events:
        if not_before is not None and (hold := not_before - time.time()) > 0:
            await asyncio.sleep(hold)
        yield event


def final_error(state: RingOutState, watch: RingOutWatch) -> RingOutFailedError | None:
    """
    The error a wait ends with on ``state``: unknown (the session vanished unseen: it may have connected, so the
    error is never retried) or failed; None when the call connected or is still pending.
    """
    if state is RingOutState.UNKNOWN:
        return RingOutOutcomeUnknownError(watch.failure_message(), ringout_id=watch.ringout_id, status=watch.last)
    if state is RingOutState.FAILED:
        return RingOutFailedError(watch.failure_message(), ringout_id=watch.ringout_id, status=watch.last)
    return None


def timeout_message(ringout_id: str, within: str, watch: RingOutWatch, outcome: CancelOutcome | None) -> str:
    """
    Say what happened at a wait's timeout, honestly: whether the call was stopped or goes on.

    :param within: how long the wait was, in words ("180 s", "the sensor's timeout").
    :param outcome: what the cancel achieved; None: the call was not cancelled (``cancel_on_timeout=False``).
    """
    what = outcome.describe() if outcome else "it was not cancelled (cancel_on_timeout=False)"
    return f"RingOut {ringout_id} did not connect within {within}; {what} ({watch.describe()})."


def stop_if_pending(hook: RingCentralHook, watch: RingOutWatch) -> CancelOutcome | None:
    """
    Airflow failed the deferred task without resuming it: cancel its call if it is still pending.

    The status is read first, so a call the trigger already stopped (its session is gone) or that ended by
    itself gets no second DELETE.

    :param hook: the task's RingCentralHook.
    :param watch: the call's watch (its last reading, if any, is replaced by a fresh one).
    :return: the cancel's outcome, or None when there was nothing pending to cancel.
    """
    hook.observe(watch)
    if not watch.pending:
        return None
    hook.log.warning("Airflow failed the deferred task while RingOut %s was pending: cancelling it.", watch.ringout_id)
    return CancelOutcome(hook.cancel_and_confirm(watch.ringout_id))


class RingOutEventKind(str, enum.Enum):
    """How the trigger's wait ended: the ``status`` of its event."""

    CONNECTED = "connected"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the session vanished before it was seen connected or failing: it may have connected
    TIMEOUT = "timeout"
    ERROR = "error"  # the wait itself failed (credentials revoked, RingCentral unreachable, ...)

    @property
    def state(self) -> RingOutState | None:
        """The call's final state this kind reports (connected, failed, unknown); None for timeout and error."""
        try:
            return RingOutState(self.value)
        except ValueError:
            return None


@dataclass(frozen=True)
class RingOutEvent:
    """
    The trigger's one event, typed: what the wait came to, the call's watch, a message, and the trigger's cancel.

    :meth:`payload` and :meth:`decode` are the only code that knows the event's JSON keys. The payload keeps
    the shape of the first release (``ringout_status`` holds the last reading), and :meth:`decode` reads every
    event an earlier release fired, so a task deferred across an upgrade resumes.
    """

    kind: RingOutEventKind
    watch: RingOutWatch
    message: str = ""
    cancel: CancelOutcome | None = None  # the trigger's own cancel at its deadline; None: it did not cancel

    def payload(self) -> dict[str, Any]:
        """The JSON the trigger fires."""
        watch = self.watch.to_dict()
        return {
            "status": self.kind.value,
            "ringout_id": watch["ringout_id"],
            "ringout_status": watch["last_status"],
            "seen_connected": watch["seen_connected"],
            "message": self.message,
            "cancel": self.cancel.value if self.cancel else None,
        }

    @classmethod
    def decode(cls, event: Any) -> RingOutEvent:
        """
        Read the event a task resumes with (``execute_complete``'s ``event``).

        Keys an older release did not write take their old meaning (no ``cancel``: the trigger did not cancel);
        a ``status`` this release does not know reads as an error, so the task fails with the event's message,
        and a ``cancel`` it does not know as no cancel, so the task cancels (again: a harmless repeat).

        :param event: the event's payload.
        :return: the typed event.
        :raises RingOutError: the event is not a RingOut event (no ``ringout_id``, or not a mapping).
        """
        if not isinstance(event, Mapping) or not event.get("ringout_id"):
            raise RingOutError(f"The task resumed with an event that is not a RingOut trigger event: {event!r}.")
        message = str(event.get("message") or "unknown error")
        try:
            kind = RingOutEventKind(event.get("status"))
        except ValueError:
            kind, message = RingOutEventKind.ERROR, f"unrecognised event status {event.get('status')!r}: {message}"
        watch = RingOutWatch.from_dict(
            {
                "ringout_id": event["ringout_id"],
                "seen_connected": event.get("seen_connected"),
                "last_status": event.get("ringout_status"),
            }
        )
        try:
            cancel = CancelOutcome(event["cancel"]) if event.get("cancel") else None
        except ValueError:
            cancel = None
        return cls(kind, watch, message, cancel)
