"""RingOutTrigger: waits on a RingOut in the triggerer, without blocking its event loop."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ringout._task_mixin import seconds
from airflow_provider_ringout.status import RingOutState, RingOutStatus, RingOutWatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class RingOutTrigger(BaseTrigger):
    """
    Poll a RingOut until it connects, fails, or ``end_time`` (wall clock, epoch seconds) passes.

    Yields one event: ``{"status": "connected"|"failed"|"unknown"|"timeout"|"error", "ringout_id", "ringout_status",
    "seen_connected", "message"}``. The deadline is absolute, so a triggerer restart resumes the same wait. On
    Airflow 3.3+, ``on_kill`` cancels a pending call when a user marks the task failed or clears it; a
    triggerer restart never cancels anything.
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
    ) -> None:
        super().__init__()
        self.ringout_id = str(ringout_id)
        self.end_time = float(end_time)
        self.ringcentral_conn_id = ringcentral_conn_id
        self.poll_interval = seconds(poll_interval, "poll_interval")  # 0 or less would poll in a busy loop
        self.cancel_on_kill = cancel_on_kill
        self.watch = RingOutWatch(self.ringout_id, seen_connected=seen_connected)
        if last_status:
            self.watch.last = RingOutStatus.from_dict(last_status)

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
                    yield self._event("timeout", f"RingOut {self.ringout_id} did not connect in time.")
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        except Exception as exc:
            yield self._event("error", f"{type(exc).__name__}: {exc}")

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed, clear): cancel the call if it is still pending."""
        last = self.watch.last
        if not self.cancel_on_kill or (last is not None and last.state is not RingOutState.PENDING):
            return
        self.log.warning("Deferred task killed while RingOut %s was pending: cancelling it.", self.ringout_id)
        await asyncio.wait_for(self._hook().acancel_and_confirm(self.ringout_id), timeout=30)
