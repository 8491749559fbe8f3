"""
RingOutCallResultTrigger: waits in the triggerer for a call's call-log record, without blocking its event loop.

Its event (:class:`~airflow_provider_ringout._result_wait.CallResultEvent`) and how a task ends on it live in
``_result_wait``, shared with the blocking wait and the sensor's pokes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_ringout._params import check_hook_params, seconds
from airflow_provider_ringout._result_wait import (
    RESULT_POLL_INTERVAL,
    CallResultEvent,
    ResultEventKind,
    placed_ringout,
)
from airflow_provider_ringout._wait import deadlines, fire_after
from airflow_provider_ringout.exceptions import RingCentralWaitEndedError, RingOutCallResultAmbiguousError
from airflow_provider_ringout.triggers._base import HeldWaitTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_ringout.call_result import PlacedRingOut


class RingOutCallResultTrigger(HeldWaitTrigger):
    """
    Look a call's record up (``aget_call_result``) until it appears, two records fit, or ``end_time`` passes.

    Yields one event (:class:`CallResultEvent`): ``{"status": "found"|"ambiguous"|"timeout"|"error", "ringout",
    "result", "message"}``. The deadline is absolute (epoch seconds), so a triggerer restart resumes the same wait.

    :param ringout: the ``ringout`` dict (``{"id", "from_number", "to_number", "placed_at"}``).
    :param end_time: when the wait ends, wall clock (epoch seconds).
    :param poll_interval: seconds between look-ups.
    :param hook_params: keyword arguments for :class:`RingCentralHook`, as the task that deferred was given them.
    :param carry: JSON the deferring task gets back in the event (how the call's own wait ended, for the operator).
    :param fire_after: the event is held until then (epoch seconds; ``_wait.fire_after``), or None.
    """

    def __init__(
        self,
        *,
        ringout: dict[str, Any],
        end_time: float,
        ringcentral_conn_id: str = "ringcentral_default",
        poll_interval: float = RESULT_POLL_INTERVAL,
        hook_params: dict[str, Any] | None = None,
        carry: dict[str, Any] | None = None,
        fire_after: float | None = None,
    ) -> None:
        super().__init__()
        self.fire_after = fire_after
        self.ringout = placed_ringout(ringout)
        self.end_time = float(end_time)
        self.ringcentral_conn_id = ringcentral_conn_id
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.hook_params = check_hook_params(hook_params)
        self.carry = carry

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "ringout": self.ringout.as_dict(),
            "end_time": self.end_time,
            "ringcentral_conn_id": self.ringcentral_conn_id,
            "poll_interval": self.poll_interval,
        }
        if self.carry:
            kwargs["carry"] = self.carry
        return self._serialized(kwargs)

    def _event(self, kind: ResultEventKind, result: dict[str, Any] | None = None, message: str = "") -> TriggerEvent:
        return TriggerEvent(CallResultEvent(kind, self.ringout, result, message, self.carry).payload())

    async def _wait(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_ringout.hooks._transport import within_wait

        hook, ringout = self._hook(), self.ringout
        try:
            while True:
                with within_wait(time.monotonic() + self.end_time - time.time()):  # a look-up ends with the wait
                    result = await hook.aget_call_result(
                        ringout.id,
                        from_number=ringout.from_number,
                        to_number=ringout.to_number,
                        placed_at=ringout.placed_at,
                    )
                if result is not None:
                    yield self._event(ResultEventKind.FOUND, result)
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield self._event(ResultEventKind.TIMEOUT)
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        except RingCentralWaitEndedError:  # a look-up (its pacing or retries) would run past the deadline
            yield self._event(ResultEventKind.TIMEOUT)
        except RingOutCallResultAmbiguousError as exc:
            event = CallResultEvent(ResultEventKind.AMBIGUOUS, ringout, None, str(exc), self.carry, exc.candidates)
            yield TriggerEvent(event.payload())
        except Exception as exc:
            yield self._event(ResultEventKind.ERROR, message=f"{type(exc).__name__}: {exc}")


def defer_result_wait(
    task: Any,
    ringout: PlacedRingOut,
    *,
    wait: float,
    poll_interval: float,
    hard_end: float | None,
    method_name: str,
    carry: dict[str, Any] | None = None,
) -> None:
    """
    Hand the wait for ``ringout``'s result to a :class:`RingOutCallResultTrigger`; the task resumes in
    ``method_name`` with ``event`` (which hands back ``carry``). The trigger gives up a margin before Airflow's own timeout
    (``_wait.deadlines``), so its timeout event, with its words, is what the task sees.

    :param task: the deferring task (its ``ringcentral_conn_id``, ``hook_params`` and ``defer``).
    :param wait: how long to wait for the record (seconds from now).
    :param hard_end: when Airflow must fail the task at the latest (epoch seconds), or None.
    """
    now = time.time()
    end_time, airflow_timeout = deadlines(now, wait=wait, poll_interval=poll_interval, hard_end=hard_end)
    trigger = RingOutCallResultTrigger(
        ringout=ringout.as_dict(),
        end_time=end_time,
        poll_interval=poll_interval,
        ringcentral_conn_id=task.ringcentral_conn_id,
        hook_params=task.hook_params,
        carry=carry,
        fire_after=fire_after(now, end_time),
    )
    task.defer(trigger=trigger, method_name=method_name, timeout=timedelta(seconds=airflow_timeout))
