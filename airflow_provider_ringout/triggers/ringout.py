"""RingOutTrigger: waits on a RingOut in the triggerer, without blocking its event loop."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ringout._task_mixin import seconds
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutStatus, RingOutWatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# The trigger gives up this long (plus one poll interval) before Airflow's own deadline for the deferred task,
# so that it, not Airflow, ends the wait and stops the call: covers a status read in flight at the deadline, the
# DELETE and its confirming read, and a triggerer whose event loop runs a few seconds late.
DEADLINE_SLACK = 5.0
# Longest the trigger spends on one cancel (DELETE, then a status read), each with the hook's own retries.
CANCEL_TIMEOUT = 30.0


def deadline_margin(poll_interval: float, wait: float) -> float:
    """
    Seconds between the trigger's deadline and Airflow's own one: a poll plus :data:`DEADLINE_SLACK`.

    :param poll_interval: seconds between status reads.
    :param wait: the whole wait the margin is cut from; the margin never takes more than a quarter of it, so a
        short wait is not cut to nothing.
    :return: the margin in seconds.
    """
    return min(float(poll_interval) + DEADLINE_SLACK, max(float(wait), 0.0) / 4)


class RingOutTrigger(BaseTrigger):
    """
    Poll a RingOut until it connects, fails, or ``end_time`` (wall clock, epoch seconds) passes.

    Yields one event: ``{"status": "connected"|"failed"|"unknown"|"timeout"|"error", "ringout_id", "ringout_status",
    "seen_connected", "message", "cancel"}``. With ``cancel_on_timeout`` the trigger itself cancels the call at
    its deadline (DELETE, then a status read) before it fires ``timeout``, and ``cancel`` carries the
    :class:`CancelOutcome` value (``None``: it did not cancel, or the cancel failed), so the task that resumes
    never cancels twice. The call is stopped even when Airflow fails the task without resuming it. The deadline
    is absolute, so a triggerer restart resumes the same wait. On Airflow 3.3+, ``on_kill`` cancels a pending
    call when a user marks the task failed or clears it; a triggerer restart never cancels anything.
    """

    def __init__(
        self,
        *,
        ringout_id: str,
        end_time: float,
        ringcentral_conn_id: str = "ringcentral_default",
        poll_interval: float = 5.0,
        cancel_on_kill: bool = True,
        seen_connected: bool = False,
        last_status: dict[str, Any] | None = None,
        cancel_on_timeout: bool = False,  # False for payloads serialized before it existed: the task cancels
    ) -> None:
        super().__init__()
        self.ringout_id = str(ringout_id)
        self.end_time = float(end_time)
        self.ringcentral_conn_id = ringcentral_conn_id
        self.poll_interval = seconds(poll_interval, "poll_interval")  # 0 or less would poll in a busy loop
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.watch = RingOutWatch(self.ringout_id, seen_connected=seen_connected)
        if last_status:
            self.watch.last = RingOutStatus.from_dict(last_status)
        self.cancelled: CancelOutcome | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ringout_id": self.ringout_id,
                "end_time": self.end_time,
                "ringcentral_conn_id": self.ringcentral_conn_id,
                "poll_interval": self.poll_interval,
                "cancel_on_kill": self.cancel_on_kill,
                "seen_connected": self.watch.seen_connected,
                "last_status": self.watch.last.as_dict() if self.watch.last else None,
                "cancel_on_timeout": self.cancel_on_timeout,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

        return RingCentralHook(ringcentral_conn_id=self.ringcentral_conn_id)

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "ringout_id": self.ringout_id,
                "ringout_status": self.watch.last.as_dict() if self.watch.last else None,
                "seen_connected": self.watch.seen_connected,
                "message": message,
                "cancel": self.cancelled.value if self.cancelled else None,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            while True:
                state = self.watch.observe(await hook.aget_status(self.ringout_id))
                if state is RingOutState.CONNECTED:
                    yield self._event("connected", f"RingOut {self.ringout_id} connected ({self.watch.describe()}).")
                    return
                if state in (RingOutState.FAILED, RingOutState.UNKNOWN):
                    yield self._event(state.value, self.watch.failure_message())
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield self._event("timeout", await self._time_out(hook))
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        except Exception as exc:
            yield self._event("error", f"{type(exc).__name__}: {exc}")

    async def _time_out(self, hook: Any) -> str:
        """Cancel the still-pending call if asked (once), and say so in the event's message."""
        message = f"RingOut {self.ringout_id} did not connect in time."
        if not self.cancel_on_timeout:
            return message
        try:
            outcome = await asyncio.wait_for(hook.acancel_and_confirm(self.ringout_id), timeout=CANCEL_TIMEOUT)
        except Exception as exc:  # the resuming task tries once more
            self.log.warning("Could not cancel RingOut %s at the deadline: %s", self.ringout_id, exc)
            return f"{message} The trigger could not cancel it ({type(exc).__name__}: {exc})."
        self.cancelled = CancelOutcome(outcome)
        return f"{message} Cancelled by the trigger: {self.cancelled.value}."

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed, clear): cancel the call if it is still pending."""
        last = self.watch.last
        if not self.cancel_on_kill or self.cancelled is not None:
            return
        if last is not None and last.state is not RingOutState.PENDING:
            return
        self.log.warning("Deferred task killed while RingOut %s was pending: cancelling it.", self.ringout_id)
        await asyncio.wait_for(self._hook().acancel_and_confirm(self.ringout_id), timeout=CANCEL_TIMEOUT)


# The ``next_method`` Airflow resumes a deferred task with to fail it: its own deadline passed before the
# trigger fired (a triggerer down or far behind), or the trigger crashed. ``execute_complete`` never runs then.
TRIGGER_FAIL = "__fail__"


def event_cancel(event: dict[str, Any]) -> CancelOutcome | None:
    """How the trigger's own cancel ended, from its event; None if it did not cancel (or an older trigger fired)."""
    value = event.get("cancel")
    return CancelOutcome(value) if value else None


def stop_if_pending(hook: Any, watch: RingOutWatch) -> CancelOutcome | None:
    """
    Airflow failed the deferred task without resuming it: cancel its call if it is still pending.

    The status is read first, so a call the trigger already stopped (its session is gone) or that ended by
    itself gets no second DELETE.

    :param hook: the task's RingCentralHook.
    :param watch: the call's watch (its last reading, if any, is replaced by a fresh one).
    :return: the cancel's outcome, or None when there was nothing pending to cancel.
    """
    if hook.observe(watch) is not RingOutState.PENDING:
        return None
    hook.log.warning("Airflow failed the deferred task while RingOut %s was pending: cancelling it.", watch.ringout_id)
    return CancelOutcome(hook.cancel_and_confirm(watch.ringout_id))
