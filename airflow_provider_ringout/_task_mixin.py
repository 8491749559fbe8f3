"""
What every RingOut task shares: a lazily built hook and its ``hook_params``, and how a wait on a call ends on the
task side, written once for the operator and the sensor (poke, reschedule and deferrable alike).

- :meth:`RingCentralTaskMixin._read`: one status read of a poke or of the check before deferring.
- :meth:`RingCentralTaskMixin._defer_wait`: the deferral, with the deadlines of ``_wait.deadlines``.
- :meth:`RingCentralTaskMixin._finish`: a final state ends the wait (connected returns; failed and unknown raise
  :func:`~airflow_provider_ringout._wait.final_error`).
- :meth:`RingCentralTaskMixin._resume`: the trigger's event, decoded and ended the same way (after dbt Cloud's
  ``validate_execute_complete_event``); the caller words only its timeout.
- :meth:`RingCentralTaskMixin._wait_failed`: a wait without a final status cancels, unless a retry reconnects.
- :meth:`RingCentralTaskMixin._cancel_at_timeout` and :meth:`RingCentralTaskMixin._stop_after_airflow_timeout`:
  the cancel at the task's timeout, and the stop when Airflow's own timeout beat the trigger.
- ``on_kill``: cancel a call that is still pending.

The parse-time bounds and checks live in ``_params`` (the trigger checks its arguments with them too) and are
importable from here as before.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ringout._params import (
    HOOK_PARAMS,
    MAX_ATTEMPTS,
    MAX_BACKOFF_FACTOR,
    MAX_DEDUP_WINDOW,
    MAX_PER_NUMBER_WAIT,
    MAX_POLL_INTERVAL,
    MAX_RATE_LIMIT_BUDGET,
    MAX_WAIT,
    check_hook_params,
    seconds,
)
from airflow_provider_ringout._wait import (
    TRIGGER_FAIL,
    RingOutEvent,
    RingOutEventKind,
    deadlines,
    final_error,
    fire_after,
    stop_if_pending,
)
from airflow_provider_ringout.exceptions import RingOutError, RingOutFailedError
from airflow_provider_ringout.phone import is_literal_number, mask_phone_number
from airflow_provider_ringout.status import RingOutState, RingOutWatch

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.status import CancelOutcome

__all__ = [  # the bounds and checks are kept in _params; importable from here as before
    "HOOK_PARAMS",
    "MAP_INDEX_TEMPLATE",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF_FACTOR",
    "MAX_DEDUP_WINDOW",
    "MAX_PER_NUMBER_WAIT",
    "MAX_POLL_INTERVAL",
    "MAX_RATE_LIMIT_BUDGET",
    "MAX_WAIT",
    "RingCentralTaskMixin",
    "check_hook_params",
    "retry_follows",
    "seconds",
]

# RingOutOperator's default map_index_template: a mapped call shows the number it calls, masked as in the logs,
# in the grid instead of 0/1/2 (the number is already rendered when Airflow renders this, after the task ran).
MAP_INDEX_TEMPLATE = "{{ task.mask_number(task.to_number) }}"


def retry_follows(task: Any, context: Mapping[str, Any], *, reconnects: bool) -> bool:
    """
    Whether a retry of this task will follow a retryable failure now and reconnect to its call.

    The one place operator and sensor decide whether a call whose wait failed is cancelled now or left to the
    retry. Airflow retries a failed try while ``try_number <= max_tries`` (``max_tries`` is ``retries`` until a
    clear raises it); a core that does not say counts as "no retry", so the call is cancelled rather than left.

    :param task: the operator or sensor (its ``retries`` when the task instance has no ``max_tries``).
    :param context: the task's context.
    :param reconnects: whether a retry of this task watches the same call (False: it would lose it).
    """
    ti = context.get("ti")
    try_number = getattr(ti, "try_number", None)
    max_tries = getattr(ti, "max_tries", None)
    if max_tries is None:
        max_tries = getattr(task, "retries", 0)
    if not reconnects or not isinstance(try_number, int) or not isinstance(max_tries, int):
        return False
    return bool(getattr(task, "retries", 0)) and try_number <= max_tries


class RingCentralTaskMixin:
    """
    The hook, built on first use (never at DAG-parse time), how a wait on a call ends, and ``on_kill``.

    Classes using it set ``ringcentral_conn_id``, and may set ``hook_params`` (checked by
    :func:`check_hook_params`), ``cancel_on_kill``, ``cancel_on_timeout`` and ``_watch``. They may extend
    :meth:`_finish` (the operator remembers the outcome) and :meth:`_reconnects` (whether a retry watches the same
    call); they word their own timeout.
    """

    ringcentral_conn_id: str
    hook_params: dict[str, Any] | None = None
    cancel_on_kill: bool = False
    cancel_on_timeout: bool = False
    _watch: RingOutWatch | None = None
    log: Any
    defer: Any  # BaseOperator's

    @cached_property
    def hook(self) -> RingCentralHook:
        """The task's hook, built with ``ringcentral_conn_id`` and ``hook_params`` on first use."""
        from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

        return RingCentralHook(ringcentral_conn_id=self.ringcentral_conn_id, **(self.hook_params or {}))

    def render_template(
        self, content: Any, context: Any, jinja_env: Any = None, seen_oids: set[int] | None = None
    ) -> Any:
        """Airflow's rendering, except that a number written out stays text (``phone.is_literal_number``)."""
        if is_literal_number(content):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]

    def mask_number(self, number: str | None) -> str:
        """``number`` masked as the logs show it (``phone.mask_phone_number``); templates call it (map index)."""
        return mask_phone_number(number)

    # --- deferring -----------------------------------------------------------------------------------

    def _defer_wait(
        self, watch: RingOutWatch, *, wait: float, poll_interval: float, hard_end: float | None, say_waited: bool
    ) -> None:
        """
        Hand the wait on ``watch`` to a :class:`RingOutTrigger` with this task's settings, deadlines as
        :func:`~airflow_provider_ringout._wait.deadlines` sets them; the task resumes in ``execute_complete``.

        :param wait: how long to wait for the call (seconds from now).
        :param hard_end: when Airflow must fail the task at the latest (epoch seconds), or None.
        :param say_waited: hand ``execute_complete`` how long the trigger waits (``waited``), for its message.
        """
        from airflow_provider_ringout.triggers.ringout import RingOutTrigger

        now = time.time()
        end_time, airflow_timeout = deadlines(now, wait=wait, poll_interval=poll_interval, hard_end=hard_end)
        trigger = RingOutTrigger.from_watch(
            watch,
            end_time=end_time,
            poll_interval=poll_interval,
            ringcentral_conn_id=self.ringcentral_conn_id,
            cancel_on_kill=self.cancel_on_kill,
            cancel_on_timeout=self.cancel_on_timeout,
            hook_params=self.hook_params,
            fire_after=fire_after(now, end_time),
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"waited": round(end_time - now, 1)} if say_waited else None,
            timeout=timedelta(seconds=airflow_timeout),
        )

    # --- how a wait ends -----------------------------------------------------------------------------

    def _finish(self, state: RingOutState, watch: RingOutWatch, context: Context) -> None:
        """End the wait on a final state: connected returns (logged); failed and unknown raise their error."""
        if state is RingOutState.CONNECTED:
            self.log.info("RingOut %s connected (%s).", watch.ringout_id, watch.describe())
            return
        error = final_error(state, watch)
        if error is not None:
            raise error

    def _read(self, watch: RingOutWatch, context: Context) -> RingOutState:
        """
        One status read into ``watch`` (a poke, or the check before deferring): a read that fails for good ends the
        wait (:meth:`_wait_failed`), and so does a final state (:meth:`_finish`: connected returns).

        :return: the state read (connected if it returned on a final one).
        """
        try:
            state = self.hook.observe(watch)
        except Exception as exc:  # status reads failing for good, or anything unexpected: no final status
            raise self._wait_failed(context, watch.ringout_id, exc) from exc
        if state.is_final:
            self._finish(state, watch, context)
        return state

    def _resume(self, context: Context, event: Any) -> RingOutEvent:
        """
        Resume after the trigger: decode its event and end the wait as a blocking wait or a poke does.

        A final state goes to :meth:`_finish`; the trigger's error fails the wait (:meth:`_wait_failed`). What is
        left, connected (already logged) or a timeout, is returned for the caller to finish.

        :param event: the trigger's event (``execute_complete``'s).
        :return: the decoded event, of kind connected or timeout.
        :raises RingOutError: the event is not a RingOut trigger event.
        """
        resumed = RingOutEvent.decode(event)
        self._watch = resumed.watch
        if resumed.kind.state is not None:  # connected, failed or unknown
            self._finish(resumed.kind.state, resumed.watch, context)
        elif resumed.kind is RingOutEventKind.ERROR:
            why = f"the trigger's error: {resumed.message}"
            raise self._wait_failed(context, resumed.watch.ringout_id, why)
        return resumed

    def _reconnects(self, context: Context) -> bool:
        """Whether a retry of this task would watch this same call (the sensor's does: it pokes the same id)."""
        return True

    def _wait_failed(self, context: Context, ringout_id: str, why: Exception | str) -> RingOutFailedError:
        """
        The error for a wait that ended without a final status; the call is cancelled first, unless a retry
        follows that reconnects to it (that retry cancels it if its own wait fails for good).

        :param why: what ended the wait (a status read failing for good, the trigger's error, ...).
        """
        if retry_follows(self, context, reconnects=self._reconnects(context)):
            what = "it is left to the task's retry, which reconnects to it (and cancels it if its own wait fails)"
        else:
            what = self._cancel_urgently(ringout_id)
        message = f"Waiting on RingOut {ringout_id} failed ({why}); {what}."
        self.log.error(message)
        return RingOutFailedError(message, ringout_id=ringout_id)

    def _cancel_urgently(self, ringout_id: str) -> str:
        """Cancel with bounded waits (the wait already failed: do not hang on top of it); say what it did."""
        try:
            return self.hook.cancel_and_confirm(ringout_id, urgent=True).describe()
        except RingOutError as exc:
            self.log.exception("Could not cancel RingOut %s.", ringout_id)
            return f"a cancel was tried, but whether it stopped the call is unknown ({exc})"
        except Exception as exc:
            self.log.exception("Could not cancel RingOut %s.", ringout_id)
            return f"a cancel was tried, but whether it stopped the call is unknown ({type(exc).__name__})"

    def _cancel_at_timeout(self, ringout_id: str, done: CancelOutcome | None = None) -> CancelOutcome | None:
        """
        The cancel of a call whose wait timed out: ``done`` when the trigger already cancelled it, else a cancel
        now if ``cancel_on_timeout``; None when it is not cancelled.
        """
        if done is None and self.cancel_on_timeout:
            return self.hook.cancel_and_confirm(ringout_id)
        return done

    def _report_cancel(self, ringout_id: str, outcome: CancelOutcome | None) -> None:
        """Warn when a cancel after a timeout left the call going on (it connected, or its first leg is up)."""
        if outcome is not None and not outcome.stopped:
            self.log.warning("RingOut %s goes on after its wait timed out: %s.", ringout_id, outcome.describe())

    def _deferred_ringout_id(self, context: Context) -> str | None:
        """The call the deferred task waited on (the sensor's own ``ringout_id``; the operator's saved id)."""
        return self._watch.ringout_id if self._watch is not None else None

    def _stop_after_airflow_timeout(self, next_method: str, context: Context) -> CancelOutcome | None:
        """
        Airflow's own timeout beat the trigger (``next_method`` is ``TRIGGER_FAIL``): with ``cancel_on_timeout``,
        stop the call if it is still pending. Called from ``resume_execution``, before Airflow fails the task.

        :param next_method: what Airflow resumes the task with.
        :return: the cancel's outcome; None when nothing was cancelled (or the stop failed: logged).
        """
        if next_method != TRIGGER_FAIL or not self.cancel_on_timeout:
            return None
        ringout_id = self._deferred_ringout_id(context)
        if not ringout_id:
            return None
        try:
            outcome = stop_if_pending(self.hook, RingOutWatch(ringout_id))
        except RingOutError:
            self.log.exception("Could not stop RingOut %s after Airflow's timeout.", ringout_id)
            return None
        self._report_cancel(ringout_id, outcome)
        return outcome

    def on_kill(self) -> None:
        """Cancel a call that is still pending when the task is killed, so no phone rings on for nobody."""
        watch = self._watch
        if not self.cancel_on_kill or watch is None or not watch.pending:
            return
        self.log.warning("Task killed while RingOut %s was pending: cancelling it.", watch.ringout_id)
        try:
            # on_kill runs in Airflow's SIGTERM handler, maybe on top of a token renewal holding the shared locks.
            self.hook.cancel_and_confirm(watch.ringout_id, urgent=True)
        except Exception:
            self.log.exception("Could not cancel RingOut %s.", watch.ringout_id)
