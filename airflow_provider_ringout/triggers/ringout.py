"""
RingOutTrigger: waits on a RingOut in the triggerer, without blocking its event loop.

Its event (:class:`RingOutEvent`), the margin before Airflow's own deadline and the stop after Airflow's timeout
live in ``_wait``, shared with the tasks that defer to it, and are importable from here as before.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_ringout._params import check_hook_params, seconds
from airflow_provider_ringout._wait import (
    DEADLINE_SLACK,
    TRIGGER_FAIL,
    RingOutEvent,
    RingOutEventKind,
    deadline_margin,
    stop_if_pending,
)
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutWatch
from airflow_provider_ringout.triggers._base import HeldWaitTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

# Longest the trigger spends on one cancel (DELETE, then a status read), each with the hook's own retries.
CANCEL_TIMEOUT = 30.0

__all__ = [  # the event, the deadlines and the stop after Airflow's timeout are kept in _wait; importable here
    "CANCEL_TIMEOUT",
    "DEADLINE_SLACK",
    "TRIGGER_FAIL",
    "RingOutEvent",
    "RingOutEventKind",
    "RingOutTrigger",
    "deadline_margin",
    "stop_if_pending",
]


class RingOutTrigger(HeldWaitTrigger):
    """
    Poll a RingOut until it connects, fails, or ``end_time`` (wall clock, epoch seconds) passes.

    Yields one event (:class:`RingOutEvent`): ``{"status": "connected"|"failed"|"unknown"|"timeout"|"error",
    "ringout_id", "ringout_status", "seen_connected", "message", "cancel"}``. With ``cancel_on_timeout`` the
    trigger itself cancels the call at its deadline (DELETE, then a status read) before it fires ``timeout``, and
    ``cancel`` carries the :class:`CancelOutcome` value (``None``: it did not cancel, or the cancel failed), so
    the task that resumes never cancels twice. The call is stopped even when Airflow fails the task without
    resuming it. The deadline is absolute, so a triggerer restart resumes the same wait. On Airflow 3.3+,
    ``on_kill`` cancels a pending call when a user marks the task failed or clears it; a triggerer restart never
    cancels anything. Operators and sensors build it with :meth:`from_watch`.

    :param hook_params: keyword arguments for :class:`RingCentralHook` (``max_attempts``, ``backoff_factor``,
        ``token_cache_dir``), as the task that deferred was given them.
    :param fire_after: the event is held until then (epoch seconds; ``_wait.fire_after``), or None.
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
        hook_params: dict[str, Any] | None = None,
        fire_after: float | None = None,
    ) -> None:
        super().__init__()
        self.fire_after = fire_after
        self.watch = RingOutWatch.from_dict(
            {"ringout_id": ringout_id, "seen_connected": seen_connected, "last_status": last_status}
        )
        self.ringout_id = self.watch.ringout_id
        self.end_time = float(end_time)
        self.ringcentral_conn_id = ringcentral_conn_id
        self.poll_interval = seconds(poll_interval, "poll_interval")  # 0 or less would poll in a busy loop
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.hook_params = check_hook_params(hook_params)
        self.cancelled: CancelOutcome | None = None

    @classmethod
    def from_watch(
        cls,
        watch: RingOutWatch,
        *,
        end_time: float,
        poll_interval: float,
        ringcentral_conn_id: str,
        cancel_on_kill: bool,
        cancel_on_timeout: bool,
        hook_params: dict[str, Any] | None = None,
        fire_after: float | None = None,
    ) -> RingOutTrigger:
        """
        The trigger that goes on with ``watch`` (its id, and what the task already saw) in the triggerer.

        :param watch: the call, as the deferring task left it.
        :param end_time: when the wait ends, wall clock (epoch seconds).
        :param poll_interval: seconds between status reads.
        :param ringcentral_conn_id: the ``ringcentral`` connection.
        :param cancel_on_kill: cancel a still-pending call when the deferred task is killed.
        :param cancel_on_timeout: cancel the call at ``end_time`` before firing ``timeout``.
        :param hook_params: keyword arguments for :class:`RingCentralHook`.
        :param fire_after: hold the event until then (epoch seconds), or None.
        :return: the trigger.
        """
        return cls(
            **watch.to_dict(),
            end_time=end_time,
            poll_interval=poll_interval,
            ringcentral_conn_id=ringcentral_conn_id,
            cancel_on_kill=cancel_on_kill,
            cancel_on_timeout=cancel_on_timeout,
            hook_params=hook_params,
            fire_after=fire_after,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            **self.watch.to_dict(),
            "end_time": self.end_time,
            "ringcentral_conn_id": self.ringcentral_conn_id,
            "poll_interval": self.poll_interval,
            "cancel_on_kill": self.cancel_on_kill,
            "cancel_on_timeout": self.cancel_on_timeout,
        }
        return self._serialized(kwargs)

    def _event(self, kind: RingOutEventKind, message: str) -> TriggerEvent:
        return TriggerEvent(RingOutEvent(kind, self.watch, message, self.cancelled).payload())

    async def _wait(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_ringout.hooks._transport import within_wait

        hook = self._hook()
        try:
            while True:
                with within_wait(time.monotonic() + self.end_time - time.time()):  # a read ends with the wait
                    status = await hook.aget_status(self.ringout_id)
                state = self.watch.observe(status)
                if state.is_final:  # connected, failed or unknown: the event's kind is the state
                    yield self._event(RingOutEventKind(state.value), self._final_message(state))
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield self._event(RingOutEventKind.TIMEOUT, await self._time_out(hook))
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        except Exception as exc:
            yield self._event(RingOutEventKind.ERROR, f"{type(exc).__name__}: {exc}")

    def _final_message(self, state: RingOutState) -> str:
        if state is RingOutState.CONNECTED:
            return f"RingOut {self.ringout_id} connected ({self.watch.describe()})."
        return self.watch.failure_message()

    async def _time_out(self, hook: RingCentralHook) -> str:
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
        return f"{message} The trigger's cancel: {self.cancelled.describe()}."

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed, clear): cancel the call if it is still pending."""
        if not self.cancel_on_kill or self.cancelled is not None or not self.watch.pending:
            return
        self.log.warning("Deferred task killed while RingOut %s was pending: cancelling it.", self.ringout_id)
        await asyncio.wait_for(self._hook().acancel_and_confirm(self.ringout_id), timeout=CANCEL_TIMEOUT)
