"""What every RingOut task shares: a lazily built hook, duration checks, and cancel-on-kill."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.status import RingOutState

if TYPE_CHECKING:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.status import RingOutWatch

MAX_WAIT = timedelta(hours=24)


def seconds(value: float | timedelta, name: str, *, maximum: timedelta = MAX_WAIT) -> float:
    """Check a duration parameter (seconds or timedelta): positive and not absurd. Raised when the DAG is built."""
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise RingCentralConfigError(f"{name} must be a number of seconds or a timedelta; got {value!r}.")
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not 0 < result <= maximum.total_seconds():
        raise RingCentralConfigError(
            f"{name} must be more than 0 and at most {maximum.total_seconds():.0f} seconds; got {result:g}."
        )
    return result


class RingCentralTaskMixin:
    """
    The hook, built on first use (never at DAG-parse time), and ``on_kill`` that cancels a still-pending call.

    Classes using it set ``ringcentral_conn_id``, and may set ``cancel_on_kill`` and ``_watch``.
    """

    ringcentral_conn_id: str
    cancel_on_kill: bool = False
    _watch: RingOutWatch | None = None
    log: Any

    @cached_property
    def hook(self) -> RingCentralHook:
        from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

        return RingCentralHook(ringcentral_conn_id=self.ringcentral_conn_id)

    def on_kill(self) -> None:
        """Cancel a call that is still pending when the task is killed, so no phone rings on for nobody."""
        watch = self._watch
        if not self.cancel_on_kill or watch is None:
            return
        if watch.last is not None and watch.last.state is not RingOutState.PENDING:
            return
        self.log.warning("Task killed while RingOut %s was pending: cancelling it.", watch.ringout_id)
        try:
            # on_kill runs in Airflow's SIGTERM handler, maybe on top of a token renewal holding the shared locks.
            self.hook.cancel_and_confirm(watch.ringout_id, urgent=True)
        except Exception:
            self.log.exception("Could not cancel RingOut %s.", watch.ringout_id)
