"""RingOutTrigger: waits on a RingOut in the triggerer, without blocking its event loop."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ringout._task_mixin import check_hook_params, seconds
from airflow_provider_ringout.exceptions import RingOutError
from airflow_provider_ringout.status import CancelOutcome, RingOutState, RingOutWatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

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


class RingOutTrigger(BaseTrigger):
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
    ) -> None:
        super().__init__()
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
        if self.hook_params:  # only when given: a triggerer still on the previous release can load the rest
            kwargs["hook_params"] = self.hook_params
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _hook(self) -> RingCentralHook:
        from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

        return RingCentralHook(ringcentral_conn_id=self.ringcentral_conn_id, **(self.hook_params or {}))

    def _event(self, kind: RingOutEventKind, message: str) -> TriggerEvent:
        return TriggerEvent(RingOutEvent(kind, self.watch, message, self.cancelled).payload())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_ringout.hooks._transport import within_wait

        hook = self._hook()
        try:
            while True:
                with within_wait(time.monotonic() + self.end_time - time.time()):  # a read ends with the wait
                    status = await hook.aget_status(self.ringout_id)
                state = self.watch.observe(status)
                if state is RingOutState.CONNECTED:
                    message = f"RingOut {self.ringout_id} connected ({self.watch.describe()})."
                    yield self._event(RingOutEventKind.CONNECTED, message)
                    return
                if state in (RingOutState.FAILED, RingOutState.UNKNOWN):
                    yield self._event(RingOutEventKind(state.value), self.watch.failure_message())
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield self._event(RingOutEventKind.TIMEOUT, await self._time_out(hook))
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        except Exception as exc:
            yield self._event(RingOutEventKind.ERROR, f"{type(exc).__name__}: {exc}")

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


def stop_if_pending(hook: RingCentralHook, watch: RingOutWatch) -> CancelOutcome | None:
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
